"""The broker stopped (SIGTERM) and restarted, or frozen (SIGSTOP), while a service publishes and
both regions' invalidators drain: every event is purged in both regions, none lost.

`EventPublisher.publish` raises when the brokers do not acknowledge; a service publishes the same
envelope (same event id) again, and so does this test's publisher: an event counts as published
once acknowledged. Time to recover: from the fault's end (the restarted broker answers its group
coordinator requests; the frozen one is resumed) to both groups committed at the log end.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable

from contracts.orders import CATALOGUE
from invalidator import InvalidatorSettings
from producers import EventPublisher, RedisClient
from tests.conftest import wait_until
from tests.faults.accounting import (
    Outcome,
    account,
    dead_lettered_ids,
    record_outcome,
    scaled,
)
from tests.faults.broker import broker_pid, broker_restored_afterwards, process_gone, stack_dir
from tests.faults.workload import Published, publish_until_acknowledged
from tests.integration.conftest import REGIONS, running_invalidators
from tests.integration.kafka_tools import all_caught_up
from tests.integration.stack import start_local_stack

BEFORE_FAULT = scaled(300, 3000)
"""Events acknowledged before the fault, and again after it, before publishing stops."""
FROZEN_S = scaled(5, 15)
RECOVER_WITHIN_S = 180


async def test_broker_stopped_and_restarted_while_publishing_loses_nothing(
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    redis_clients: dict[str, RedisClient],
) -> None:
    async def stop_and_restart() -> None:
        pid = broker_pid(stack_dir())
        os.kill(pid, signal.SIGTERM)
        await wait_until(lambda: process_gone(pid), within=90, what="the broker to shut down")
        await asyncio.to_thread(start_local_stack)

    await _drain_through(
        "broker stopped and restarted", stop_and_restart, settings, publisher, redis_clients
    )


async def test_broker_frozen_while_publishing_loses_nothing(
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    redis_clients: dict[str, RedisClient],
) -> None:
    async def freeze() -> None:
        pid = broker_pid(stack_dir())
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(FROZEN_S)  # the fault's duration, not a synchronisation
        finally:
            os.kill(pid, signal.SIGCONT)

    await _drain_through(f"broker frozen {FROZEN_S} s", freeze, settings, publisher, redis_clients)


async def _drain_through(
    scenario: str,
    fault: Callable[[], Awaitable[None]],
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    redis_clients: dict[str, RedisClient],
) -> None:
    """Publish and drain through `fault` (returns when the fault is over); account per event."""
    published = Published()
    stop_publishing = asyncio.Event()

    async def publish_stream() -> None:
        while not stop_publishing.is_set():
            await publish_until_acknowledged(publisher, published)

    async def acknowledged(count: int) -> bool:
        return len(published.namespaces) >= count

    groups = [settings.group_id(region) for region in REGIONS]
    topics = CATALOGUE.topics()
    # Invalidators stop after the broker is restored, so their final commit has a broker.
    async with running_invalidators(settings, CATALOGUE), broker_restored_afterwards():
        publishing = asyncio.create_task(publish_stream())
        try:
            await wait_until(
                lambda: acknowledged(BEFORE_FAULT), within=120, what="events before the fault"
            )
            await fault()
            fault_ended = time.monotonic()
            resumed_at = len(published.namespaces) + BEFORE_FAULT
            await wait_until(
                lambda: acknowledged(resumed_at), within=120, what="publishing after the fault"
            )
        finally:
            stop_publishing.set()
            await asyncio.wait_for(publishing, timeout=120)
        await wait_until(
            lambda: all_caught_up(settings.kafka, groups, topics),
            within=RECOVER_WITHIN_S,
            what="both regions' groups to commit the log end",
            interval=0.2,
        )
        recover_s = time.monotonic() - fault_ended

    dead = await dead_lettered_ids(settings.kafka, settings.dead_letter_topic, within_s=60)
    accounting = await account(published.namespaces, redis_clients, dead_lettered=dead)
    record_outcome(
        Outcome(
            scenario=scenario,
            events=accounting.published,
            lost=len({e for ids in accounting.lost.values() for e in ids}),
            dead_lettered=accounting.dead_lettered,
            recover_s=recover_s,
        )
    )
    accounting.assert_nothing_lost()
    assert accounting.dead_lettered == 0, "valid events were dead-lettered"
