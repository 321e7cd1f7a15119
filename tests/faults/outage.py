"""Publishing and draining through a broker fault, accounted per event id (the broker tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from contracts.example_orders import CATALOGUE
from invalidator import InvalidatorSettings
from producers import EventPublisher, RedisClient
from tests.faults.accounting import account, dead_lettered_ids, record_outcome, scaled
from tests.faults.workload import Published, publish_until_acknowledged
from tests.integration.invalidators import REGIONS, running_invalidators
from tests.integration.kafka_tools import all_caught_up
from tests.waiting import wait_until

BEFORE_FAULT = scaled(300, 3000)
"""Events acknowledged before the fault, and again after it, before publishing stops."""
RECOVER_WITHIN_S = 180


async def drain_through(
    scenario: str,
    fault: Callable[[], Awaitable[None]],
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    redis_clients: dict[str, RedisClient],
) -> None:
    """Publish and drain with both regions' invalidators through `fault`; account per event.

    scenario: the outcome's name.
    fault: returns when the fault is over (time to recover is measured from then).
    settings: the brokers and regions (groups of the test's prefix, started at the log end).
    publisher: publishes on `settings.kafka`, each event retried until acknowledged.
    redis_clients: region -> client, for the accounting.
    """
    published = Published()
    stop_publishing = asyncio.Event()

    async def publish_stream() -> None:
        while not stop_publishing.is_set():
            await publish_until_acknowledged(publisher, published)

    async def acknowledged(count: int) -> bool:
        return len(published.namespaces) >= count

    groups = [settings.group_id(region) for region in REGIONS]
    topics = CATALOGUE.topics()
    async with running_invalidators(settings, CATALOGUE):
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
    record_outcome(accounting.outcome(scenario, recover_s))
    accounting.assert_nothing_lost()
    assert accounting.dead_lettered == 0, "valid events were dead-lettered"
