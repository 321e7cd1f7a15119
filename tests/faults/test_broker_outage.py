"""The broker stopped (SIGTERM) and restarted, or frozen (SIGSTOP), while a service publishes and
both regions' invalidators drain: every event is purged in both regions, none lost.

`EventPublisher.publish` raises when the brokers do not acknowledge; a service publishes the same
envelope (same event id) again, and so does this test's publisher: an event counts as published
once acknowledged. Time to recover: from the fault's end (the restarted broker answers its group
coordinator requests; the frozen one is resumed) to both groups committed at the log end.
"""

from __future__ import annotations

import asyncio

from invalidator import InvalidatorSettings
from producers import EventPublisher, RedisClient
from tests.faults.accounting import scaled
from tests.faults.outage import drain_through
from tests.faults.services import KAFKA, restored_afterwards, service_process

FROZEN_S = scaled(5, 15)


async def test_broker_stopped_and_restarted_while_publishing_loses_nothing(
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    redis_clients: dict[str, RedisClient],
) -> None:
    broker = service_process(KAFKA)

    async def stop_and_restart() -> None:
        await broker.stop()
        await broker.start_again()

    async with restored_afterwards(broker):
        await drain_through(
            "broker stopped and restarted", stop_and_restart, settings, publisher, redis_clients
        )


async def test_broker_frozen_while_publishing_loses_nothing(
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    redis_clients: dict[str, RedisClient],
) -> None:
    broker = service_process(KAFKA)

    async def freeze() -> None:
        async with broker.frozen():
            await asyncio.sleep(FROZEN_S)  # the fault's duration, not a synchronisation

    async with restored_afterwards(broker):
        await drain_through(
            f"broker frozen {FROZEN_S} s", freeze, settings, publisher, redis_clients
        )
