"""A region's Redis restored from an older snapshot: the purges made after the snapshot vanish
with it, while the invalidator's offsets say they were done. The watchdog's one-shot reports
exactly those, per event id, as not seen in that region, and nothing in the other.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts import RedisTarget
from contracts.example_orders import CATALOGUE, OrderCreated
from invalidator import InvalidatorSettings
from invalidator.operators import EXIT_NOT_SEEN
from invalidator.watchdog import Outcome
from producers import EventPublisher
from tests.integration.cli import Cli
from tests.integration.invalidators import REGIONS, running_invalidators
from tests.integration.redis_server import RedisServer
from tests.integration.watchdog import (
    CollectedResults,
    judged,
    orders,
    publish_all,
    running_watchdog,
)
from tests.waiting import wait_until

RESTORED = "eu"
"""The region whose Redis is restored (a redis-server of this test's own)."""


@pytest.fixture
async def eu_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A standalone Redis of this test, for region eu."""
    server = RedisServer(tmp_path / "redis-eu")
    await server.start()
    yield server
    await server.stop()


def _again(events: Sequence[OrderCreated]) -> list[OrderCreated]:
    """New events (new ids) of the same orders and companies: they purge the same namespaces."""
    return [event.model_copy(update={"total_cents": event.total_cents + 1}) for event in events]


async def _seen_everywhere(
    settings: InvalidatorSettings, publisher: EventPublisher, events: Sequence[OrderCreated]
) -> list[str]:
    """Publish the events with both invalidators and a watchdog running; their ids, once the
    watchdog saw every purge in both regions."""
    collected = CollectedResults()
    async with (
        running_invalidators(settings, CATALOGUE),
        running_watchdog(settings, CATALOGUE, collected),
    ):
        event_ids = await publish_all(publisher, events)
        await wait_until(
            lambda: judged(collected, REGIONS, event_ids),
            within=60,
            what=f"the watchdog to judge {len(event_ids)} events in both regions",
        )
    for region in REGIONS:
        assert set(collected.outcomes(region, event_ids).values()) == {Outcome.SEEN}, region
    return event_ids


async def test_purges_lost_to_a_snapshot_restore_are_reported_per_event(
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    eu_server: RedisServer,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = RedisTarget(name="eu-restored", url=eu_server.url)
    settings = settings.model_copy(update={"regions": {**settings.regions, RESTORED: [target]}})
    regions = json.loads(os.environ["INVALIDATOR_REGIONS"])
    regions[RESTORED] = [target.model_dump(mode="json")]
    monkeypatch.setenv("INVALIDATOR_REGIONS", json.dumps(regions))
    since = datetime.now(UTC).isoformat()
    before = orders(20)
    before_ids = await _seen_everywhere(settings, publisher, before)
    snapshot = await eu_server.save_snapshot("before.rdb")
    # After the snapshot: the same namespaces purged again, and namespaces it never had.
    again_ids = await _seen_everywhere(settings, publisher, _again(before))
    fresh_ids = await _seen_everywhere(settings, publisher, orders(5))

    await eu_server.restart_from(snapshot)
    monkeypatch.setenv("INVALIDATOR_WATCH__DEADLINE_S", "5")
    monkeypatch.setenv("INVALIDATOR_WATCH__GRACE_S", "1")
    status, summary = await cli("watch", "--since", since)

    assert status == EXIT_NOT_SEEN, summary
    restored, other = summary["regions"][RESTORED], summary["regions"]["us"]
    # The snapshot's tokens are older than the events after it: those purges are missing, each
    # of its three namespaces (the order, the company's list and its stats).
    not_seen = [m["event_id"] for m in restored["not_seen"]]
    assert set(not_seen) == set(again_ids) and len(not_seen) == 3 * len(again_ids)
    assert restored["events"]["missing"] == len(again_ids)
    assert restored["events"]["seen"] == len(before_ids)
    # Namespaces the snapshot never had hold no token: expired, not judged, never a false alarm.
    assert restored["events"]["expired_not_judged"] == len(fresh_ids)
    assert restored["events"]["unknown"] == 0
    everything = len(before_ids) + len(again_ids) + len(fresh_ids)
    assert (other["events"]["seen"], other["not_seen"]) == (everything, [])
    assert summary["missing"] == 3 * len(again_ids)
