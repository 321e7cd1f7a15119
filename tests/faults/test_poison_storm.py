"""A poison storm: malformed records of every kind interleaved with valid events.

Both regions' invalidators drain the storm: every valid event is purged in both regions, every
malformed record is dead-lettered by both regions' groups (each writes its own copy), none
stalls a partition, and the drain ends within a bound.
"""

from __future__ import annotations

import time
import uuid

from contracts import EventEnvelope
from contracts.example_orders import CATALOGUE, ORDER, OrderCreated
from contracts.namespaces import BoundNamespace
from invalidator import Invalidator, InvalidatorSettings
from producers import RedisClient
from tests.faults.accounting import Outcome, account, dead_lettered_ids, record_outcome, scaled
from tests.faults.records import MALFORMED_KINDS, WireRecord, malformed, publish_raw, wire
from tests.integration.invalidators import REGIONS
from tests.integration.kafka_tools import caught_up
from tests.waiting import wait_until

PAIRS = scaled(1_000, 10_000)
DRAIN_BOUND_S = 30 + 2 * PAIRS / 200
"""From the last record published to both regions caught up; generous on a shared 2-core
machine (30 s, plus 200 records a second; an idle machine drains the short storm in < 1 s)."""


async def test_a_poison_storm_dead_letters_every_malformed_record_and_purges_every_event(
    invalidators: dict[str, Invalidator],
    settings: InvalidatorSettings,
    redis_clients: dict[str, RedisClient],
) -> None:
    run = uuid.uuid4().hex[:8]
    valid: dict[str, BoundNamespace] = {}
    poison: dict[str, str] = {}
    records: list[WireRecord] = []
    for i in range(PAIRS):
        order_id = f"o-{run}-{i}"
        envelope = EventEnvelope.wrap(
            OrderCreated(order_id=order_id, company_id=f"c-{run}-{i % 50}", total_cents=i),
            source="orders-api-test",
            tenant="acme",
            aggregate_version=1,
        )
        records.append(wire(envelope))
        valid[str(envelope.event_id)] = ORDER.bind(order_id=order_id)
        kind = MALFORMED_KINDS[i % len(MALFORMED_KINDS)]
        bad = malformed(kind, order_id=f"p-{run}-{i}")
        records.append(bad)
        poison[bad.event_id] = kind

    started = time.monotonic()
    await publish_raw(settings.kafka, records)
    published = time.monotonic()
    groups = [settings.group_id(region) for region in REGIONS]

    async def both_caught_up() -> bool:
        return all([await caught_up(settings.kafka, g, CATALOGUE.topics()) for g in groups])

    await wait_until(both_caught_up, within=DRAIN_BOUND_S, what="both regions to drain the storm")
    drained = time.monotonic()

    by_group = {
        group: await dead_lettered_ids(
            settings.kafka, settings.dead_letter_topic, group=group, within_s=120
        )
        for group in groups
    }
    for group, ids in by_group.items():
        missing = [kind for event_id, kind in poison.items() if event_id not in ids]
        assert missing == [], f"{group} did not dead-letter {len(missing)}: {set(missing)}"
        assert not ids & set(valid), f"{group} dead-lettered valid events"
    dead_in_every_group = set.intersection(*by_group.values()) & set(poison)
    accounting = await account(valid, redis_clients)
    record_outcome(
        Outcome(
            scenario="poison storm",
            events=len(valid) + len(poison),
            lost=accounting.lost_events,
            dead_lettered=len(dead_in_every_group),
            recover_s=drained - published,
        )
    )
    accounting.assert_nothing_lost()
    assert accounting.purged == dict.fromkeys(REGIONS, PAIRS)
    assert all(invalidators[r].stats.dead_lettered == PAIRS for r in REGIONS)
    print(
        f"\npoison storm: {PAIRS} valid + {PAIRS} malformed published in "
        f"{published - started:.1f}s, drained {drained - published:.1f}s later "
        f"(bound {DRAIN_BOUND_S:.0f}s)"
    )
