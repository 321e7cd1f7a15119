"""The watchdog's healthy run at size, accounted per event id: events published through both
regions' invalidators with a watchdog at 1 in 10; every sampled event's purge is seen in both
regions, and nothing else is reported (no purge missing, late or unknown: no false alarm).

`make test` publishes 3,000 events; `make watchdog-soak` 100,000
(INVALIDATOR_WATCHDOG_SOAK_EVENTS).
"""

from __future__ import annotations

import os

import pytest

from contracts.example_orders import CATALOGUE
from invalidator import InvalidatorSettings
from invalidator.watchdog import Outcome, WatchService, is_sampled
from producers import EventPublisher
from tests.integration.invalidators import REGIONS, running_invalidators
from tests.integration.watchdog import (
    CollectedResults,
    judged,
    orders,
    publish_batch,
    running_watchdog,
)
from tests.waiting import wait_until

EVENTS = int(os.environ.get("INVALIDATOR_WATCHDOG_SOAK_EVENTS", "3000"))
SAMPLE_EVERY = 10
BATCH = 500
MAX_PENDING = 2 * BATCH // SAMPLE_EVERY
"""The next batch waits until the watchdog has at most this many sampled events whose purges it
has not seen yet: the run is paced at what the invalidators purge, as a healthy system runs."""
JUDGED_PER_S = 100
"""The slowest rate at which sampled events may be judged before the test fails."""

pytestmark = pytest.mark.timeout(300 + EVENTS // 100)


async def test_a_healthy_run_at_size_sees_every_sampled_purge_and_no_false_alarm(
    settings: InvalidatorSettings, publisher: EventPublisher
) -> None:
    sampling = settings.model_copy(
        update={"watch": settings.watch.model_copy(update={"sample_every": SAMPLE_EVERY})}
    )
    collected = CollectedResults()
    event_ids: list[str] = []
    async with (
        running_invalidators(sampling, CATALOGUE),
        running_watchdog(sampling, CATALOGUE, collected) as watchdog,
    ):
        events = orders(EVENTS)
        for start in range(0, EVENTS, BATCH):
            await wait_until(
                lambda: _caught_up(watchdog),
                within=60,
                what=f"the watchdog to see the purges of all but {MAX_PENDING} sampled events",
            )
            event_ids += await publish_batch(publisher, events[start : start + BATCH])
        sampled = [event_id for event_id in event_ids if is_sampled(event_id, SAMPLE_EVERY)]
        await wait_until(
            lambda: judged(collected, REGIONS, sampled),
            within=60 + len(sampled) / JUDGED_PER_S,
            what=f"the watchdog to judge {len(sampled)} sampled events in both regions",
        )
    assert len(event_ids) == EVENTS
    assert len(sampled) > EVENTS // SAMPLE_EVERY // 2, "1 in 10 sampled: far fewer were"
    for region in REGIONS:
        outcomes = collected.outcomes(region, sampled)
        not_seen = {event_id: o for event_id, o in outcomes.items() if o is not Outcome.SEEN}
        assert not_seen == {}, f"{len(not_seen)} sampled events not seen in {region}"
    assert len(collected.results) == len(sampled) * len(REGIONS), "an unsampled event judged"
    assert collected.skipped == []


async def _caught_up(watchdog: WatchService) -> bool:
    return watchdog.watchdog.pending <= MAX_PENDING
