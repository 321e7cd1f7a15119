"""Rebalances while events flow: a member joins, then one leaves; no event is lost or stuck.

Commits run in the background (at most one in flight, every 250 ms); a revoke commits what was
purged of the revoked partitions before they move. Accounted per event id: every published event
is purged in the region, none is dead-lettered, and the group ends committed at the log end.
"""

from __future__ import annotations

import asyncio

from contracts.example_orders import CATALOGUE
from contracts.layout import generation_key
from invalidator import Invalidator, InvalidatorSettings
from invalidator.operators import start_at_log_end
from producers import EventPublisher, RedisClient
from tests.faults.accounting import Outcome, record_outcome
from tests.faults.order_stream import OrderStream
from tests.integration.kafka_tools import caught_up
from tests.waiting import wait_until

EVENTS = 600
PACE_S = 0.004


async def test_members_joining_and_leaving_mid_stream_lose_no_event(
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    redis_clients: dict[str, RedisClient],
) -> None:
    group = settings.group_id("eu")
    await start_at_log_end(settings.kafka, group, CATALOGUE.topics())
    stream = OrderStream(publisher, events=EVENTS, pace_s=PACE_S)
    published = stream.published

    first = Invalidator(settings, region="eu", catalogue=CATALOGUE)
    second = Invalidator(settings, region="eu", catalogue=CATALOGUE)
    first_run = asyncio.create_task(first.run())
    second_run: asyncio.Task[None] | None = None
    publishing: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(first.assigned.wait(), timeout=60)
        publishing = asyncio.create_task(stream.run())
        await wait_until(
            lambda: stream.published_at_least(EVENTS // 4), within=60, what="a quarter"
        )
        second_run = asyncio.create_task(second.run())  # joins: partitions move to it
        await asyncio.wait_for(second.assigned.wait(), timeout=60)
        await wait_until(lambda: stream.published_at_least(EVENTS // 2), within=60, what="a half")
        first.stop()  # leaves: its partitions are revoked, committed, and move back
        await asyncio.wait_for(first_run, timeout=60)
        await asyncio.wait_for(publishing, timeout=120)
        await wait_until(
            lambda: caught_up(settings.kafka, group, CATALOGUE.topics()),
            within=90,
            what="the remaining member to commit the log end",
            interval=0.2,
        )
    finally:
        for invalidator in (first, second):
            invalidator.stop()
        await asyncio.gather(
            *(task for task in (first_run, second_run, publishing) if task is not None),
            return_exceptions=True,
        )

    eu = redis_clients["eu"]
    lost = [
        event_id
        for event_id, namespace in published.items()
        if await eu.get(generation_key(namespace)) is None
    ]
    assert len(published) == EVENTS
    record_outcome(Outcome("members join and leave mid-stream", EVENTS, len(lost), 0, None))
    assert lost == [], f"{len(lost)} events never purged, e.g. {lost[:3]}"
    assert first.stats.dead_lettered == second.stats.dead_lettered == 0
    assert first.stats.events > 0 and second.stats.events > 0, "one member purged everything"
