"""`dead-letters show` and `dead-letters redrive` on the real broker and both regions.

Invalidators run with a catalogue that does not know `OrderStatusChanged` (the bug), so both
regions' groups dead-letter those events; the fixed catalogue then purges what a redrive
re-publishes, once per original event however many groups dead-lettered it, and however often a
redrive made while they still ran the broken one had it dead-lettered again.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from contracts import Catalogue, EventEnvelope, KafkaConnection, Namespace, PurgeRule, topics
from contracts.example_orders import (
    CATALOGUE,
    EXAMPLE_CATALOGUE,
    ORDER,
    OrderCreated,
    OrderStatusChanged,
)
from contracts.layout import generation_key
from invalidator import InvalidatorSettings
from invalidator.cli import main
from invalidator.operators import end_offsets, records_at
from producers import EventPublisher, RedisClient
from tests.integration.cli import Cli
from tests.integration.invalidators import REGIONS, running_invalidators
from tests.integration.kafka_tools import ensure_topic
from tests.waiting import wait_until

BEFORE_THE_FIX = Catalogue(
    [
        Namespace(
            name="order",
            template="order:{order_id}",
            owner="orders-team",
            description="One order's detail view (a catalogue that forgot status changes).",
            ttl=timedelta(hours=6),
            purged_by=(PurgeRule(OrderCreated, {"order_id": "payload.order_id"}),),
        )
    ]
)
TRACE_HEADER = ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")


async def _read_from(
    kafka: KafkaConnection, starts: dict[TopicPartition, int]
) -> list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    """(key, value, headers) of every record from `starts` to the log end it has now."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **kafka.client_kwargs())
    await consumer.start()
    found: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
    try:
        consumer.assign(list(starts))
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
        ends = await consumer.end_offsets(list(starts))

        async def read_to_the_end() -> bool:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                found.extend((r.key, r.value, list(r.headers)) for r in records)
            return all([await consumer.position(tp) >= end for tp, end in ends.items()])

        await wait_until(read_to_the_end, within=30, what="the records up to the log end")
    finally:
        await consumer.stop()
    return found


async def _dead_lettered_by_both_groups(
    settings: InvalidatorSettings, publisher: EventPublisher, run: str
) -> list[EventEnvelope]:
    """3 status changes the broken catalogue does not know, and 1 record that is not JSON
    (with a trace header), dead-lettered by both regions' groups; returns the changes."""
    changes: list[EventEnvelope] = []
    async with running_invalidators(settings, BEFORE_THE_FIX) as running:
        for i in range(3):
            changes.append(
                await publisher.publish(
                    OrderStatusChanged(
                        order_id=f"o-{run}-{i}",
                        company_id=f"c-{run}",
                        old_status="placed",
                        new_status="paid",
                    ),
                    tenant="acme",
                    aggregate_version=2,
                )
            )
        raw = AIOKafkaProducer(acks="all", **settings.kafka.client_kwargs())
        await raw.start()
        try:
            await raw.send_and_wait(
                topics.ORDERS,
                value=f"not json {run}".encode(),
                key=b"order:x",
                headers=[TRACE_HEADER],
            )
        finally:
            await raw.stop()

        async def all_dead_lettered() -> bool:
            return all(inv.stats.dead_lettered >= 4 for inv in running.values())

        await wait_until(all_dead_lettered, within=60, what="both groups to dead-letter 4 records")
    return changes


async def test_show_lists_each_original_once_with_the_groups_that_dead_lettered_it(
    cli: Cli,
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = uuid.uuid4().hex[:8]
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    groups = [settings.group_id(region) for region in REGIONS]
    changes = await _dead_lettered_by_both_groups(settings, publisher, run)
    ids = {str(envelope.event_id) for envelope in changes}

    status, shown = await cli("dead-letters", "show", "--from", since)
    assert status == 0
    mine = [row for row in shown["originals"] if set(row["groups"]) <= set(groups)]
    assert len(mine) == 4, mine
    by_id = {row["event_id"]: row for row in mine if row["event_id"] in ids}
    assert set(by_id) == ids
    for row in by_id.values():
        assert row["groups"] == sorted(groups)
        assert row["reasons"] == ["unknown_type"]
        assert row["event_type"] == OrderStatusChanged.event_type
        assert (row["topic"], row["form"]) == (topics.ORDERS, "whole")
        assert row["size"] > 0 and "not in this consumer's catalogue" in row["detail"]
        assert len(row["dead_letter_offsets"]) == 2
    (poison,) = [row for row in mine if row["event_id"] is None]
    assert poison["reasons"] == ["malformed"] and poison["size"] == len(f"not json {run}")

    status, eu_only = await cli(
        "dead-letters", "show", "--from", since, "--group", groups[0], "--reason", "malformed"
    )
    assert status == 0
    assert [(r["source"], r["groups"]) for r in eu_only["originals"]] == [
        (poison["source"], [groups[0]])
    ]

    capsys.readouterr()
    status = await asyncio.to_thread(main, ["dead-letters", "show", "--from", since])
    text = capsys.readouterr().out
    assert status == 0
    assert all(row["source"] in text for row in mine)
    assert "REASON" in text and "GROUPS" in text and OrderStatusChanged.event_type in text


async def test_redrive_republishes_each_original_once_and_the_fixed_catalogue_purges(
    cli: Cli,
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    redis_clients: dict[str, RedisClient],
) -> None:
    run = uuid.uuid4().hex[:8]
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    groups = [settings.group_id(region) for region in REGIONS]
    changes = await _dead_lettered_by_both_groups(settings, publisher, run)
    source_ends = await end_offsets(settings.kafka, [topics.ORDERS])
    redrive = ("dead-letters", "redrive", "--from", since, "--reason", "unknown_type")
    status, dry = await cli(*redrive)
    assert status == 0 and dry["executed"] is False
    dry_mine = [r for r in dry["records"] if set(r["groups"]) <= set(groups)]
    assert len(dry_mine) == 3 and all(r["decodes_now"] == "yes" for r in dry_mine)
    assert await end_offsets(settings.kafka, [topics.ORDERS]) == source_ends, "a dry run published"
    for region, client in redis_clients.items():
        for i in range(3):
            key = generation_key(ORDER.bind(order_id=f"o-{run}-{i}"))
            assert await client.exists(key) == 0, f"{key} purged in {region} before the redrive"

    async with running_invalidators(settings, CATALOGUE):
        status, done = await cli(*redrive, "--execute")
        assert status == 0 and done["executed"] is True
        assert done["published"] == done["originals"] == done["dead_letters_selected"] / 2

        async def purged_everywhere() -> bool:
            keys = [generation_key(ORDER.bind(order_id=f"o-{run}-{i}")) for i in range(3)]
            return all(
                [await client.exists(*keys) == len(keys) for client in redis_clients.values()]
            )

        await wait_until(purged_everywhere, within=60, what="the fixed catalogue to purge them")

    republished = await _read_from(settings.kafka, source_ends)
    mine_again = [r for r in republished if r[1] and run.encode() in r[1]]
    assert len(mine_again) == 3, "each original must be re-published exactly once"
    assert {dict(h)["event-id"].decode() for _, _, h in mine_again} == {
        str(e.event_id) for e in changes
    }
    positions = [(TopicPartition(r["topic"], r["partition"]), r["offset"]) for r in dry_mine]
    in_the_log = await records_at(settings.kafka, positions)
    assert sorted(mine_again) == sorted(
        (record.key, record.value, list(record.headers))
        for record in in_the_log.values()
        if record is not None
    ), "a re-published record differs from its original (key, value or headers)"


async def test_a_reference_is_read_from_its_source_and_one_gone_is_reported(
    cli: Cli,
    settings: InvalidatorSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, dead_letters = "redrive-test.source", "redrive-test.dead-letter"
    await ensure_topic(settings.kafka, source, partitions=1)
    await ensure_topic(settings.kafka, dead_letters, partitions=1)
    monkeypatch.setenv("INVALIDATOR_DEAD_LETTER_TOPIC", dead_letters)
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    run = uuid.uuid4().hex[:8]
    # Near the broker's limit (1,048,588) and over aiokafka's default max_request_size (1 MiB).
    large = run.encode() + b"x" * 1_048_400
    producer = AIOKafkaProducer(
        acks="all", max_request_size=2 * 1024 * 1024, **settings.kafka.client_kwargs()
    )
    await producer.start()
    try:
        lost = await producer.send_and_wait(source, value=b"deleted", key=b"k:0")
        kept = await producer.send_and_wait(source, value=large, key=b"k:1", headers=[TRACE_HEADER])
        admin = AIOKafkaAdminClient(**settings.kafka.client_kwargs())
        await admin.start()
        try:
            await admin.delete_records({TopicPartition(source, 0): RecordsToDelete(kept.offset)})
        finally:
            await admin.close()
        for record in (lost, kept):
            await producer.send_and_wait(
                dead_letters,
                value=None,
                key=b"k",
                headers=[
                    ("dlq-reason", b"too_large"),
                    ("dlq-detail", b"too large to forward whole"),
                    ("dlq-topic", source.encode()),
                    ("dlq-partition", b"0"),
                    ("dlq-offset", str(record.offset).encode()),
                    ("dlq-group", b"invalidator.eu"),
                    ("dlq-form", b"reference"),
                    ("dlq-size", str(len(large)).encode()),
                ],
            )
    finally:
        await producer.stop()

    status, shown = await cli("dead-letters", "show", "--from", since)
    assert status == 0
    assert [(r["offset"], r["form"], r["size"]) for r in shown["originals"]] == [
        (lost.offset, "reference", len(large)),
        (kept.offset, "reference", len(large)),
    ]
    status, dry = await cli("dead-letters", "redrive", "--from", since)
    assert status == 0 and dry["gone"] == 1
    assert [r["note"] for r in dry["records"]] == ["no longer in the source log (retention)", ""]

    ends = await end_offsets(settings.kafka, [source])
    status, done = await cli("dead-letters", "redrive", "--from", since, "--execute")
    assert status == 0 and (done["published"], done["gone"]) == (1, 1)
    ((key, value, headers),) = await _read_from(settings.kafka, ends)
    assert (key, value, headers) == (b"k:1", large, [TRACE_HEADER])


async def test_a_redrive_while_the_old_catalogue_still_runs_never_multiplies(
    cli: Cli,
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = uuid.uuid4().hex[:8]
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    groups = [settings.group_id(region) for region in REGIONS]
    changes = await _dead_lettered_by_both_groups(settings, publisher, run)
    ids = sorted(str(envelope.event_id) for envelope in changes)
    redrive = ("dead-letters", "redrive", "--from", since, "--reason", "unknown_type")
    async with running_invalidators(settings, BEFORE_THE_FIX) as running:
        for attempt in range(3):
            status, dry = await cli(*redrive)
            mine = [r for r in dry["records"] if set(r["groups"]) <= set(groups)]
            assert status == 0 and dry["catalogue"] == EXAMPLE_CATALOGUE
            assert len(mine) == 3, f"redrive {attempt + 1} selected {len(mine)} of 3 events"
            assert all(len(r["sources"]) == attempt + 1 for r in mine), mine

            ends = await end_offsets(settings.kafka, [topics.ORDERS])
            rejected = {region: inv.stats.dead_lettered for region, inv in running.items()}
            status, done = await cli(*redrive, "--execute")
            assert status == 0 and done["executed"] is True
            republished = await _read_from(settings.kafka, ends)
            mine_again = [h for _, value, h in republished if value and run.encode() in value]
            assert sorted(dict(h)["event-id"].decode() for h in mine_again) == ids

            async def dead_lettered_again(before: dict[str, int] = rejected) -> bool:
                return all(inv.stats.dead_lettered >= before[r] + 3 for r, inv in running.items())

            await wait_until(dead_lettered_again, within=60, what="the copies dead-lettered again")

    capsys.readouterr()
    status = await asyncio.to_thread(main, list(redrive))
    text = capsys.readouterr().out
    assert status == 0
    assert f"DECODES NOW is judged by catalogue {EXAMPLE_CATALOGUE}, the one this command" in text


@pytest.mark.parametrize(
    "refused",
    [
        ["--from-offset", "-5"],
        ["--from-offset", "0", "--to-offset", "-1"],
        ["--from", "1m", "--to", "2m"],
        ["--from-offset", "0", "--reason", "unknown-type"],
        ["--from-offset", "0", "--group", "invalidator.apac"],
    ],
    ids=" ".join,
)
async def test_a_redrive_refused_for_its_input_publishes_nothing(
    cli: Cli, settings: InvalidatorSettings, refused: list[str]
) -> None:
    watched = [topics.ORDERS, settings.dead_letter_topic]
    ends = await end_offsets(settings.kafka, watched)
    status, report = await cli("dead-letters", "redrive", *refused, "--execute")
    assert (status, report) == (2, {})
    assert await end_offsets(settings.kafka, watched) == ends
