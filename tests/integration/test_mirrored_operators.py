"""Operators and the invalidator of region us on its own cluster of the mirrored topology
(`stack.sh up --mirrored`), reading us's topics and eu's as MirrorMaker 2 mirrors them
(`eu.orders.events`): offsets show, rewind by time and replay include the mirrored topics, rewind
by time finds eu's events by their original timestamps, topics check/create leave the mirrored
topics to MirrorMaker, a mirrored record that cannot be decoded is dead-lettered with its source,
and an invalidator waits for mirrored topics that do not exist yet."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from bench.orders_load import bare_producer, order_record
from contracts.connections import KafkaConnection
from contracts.example_orders import CATALOGUE, ORDER, OrderCreated
from contracts.layout import generation_key
from contracts.namespaces import BoundNamespace
from contracts.topics import DEAD_LETTER, ORDERS, mirrored_topic
from invalidator import InvalidatorSettings
from invalidator.deadletter import (
    HEADER_GROUP,
    HEADER_SOURCE_CLUSTER,
    HEADER_SOURCE_TOPIC,
    HEADER_TOPIC,
)
from invalidator.operators import committed_offsets, start_at_log_end
from invalidator.operators._offsets import admin_client
from producers import EventPublisher, RedisClient
from tests.integration.cli import Cli, spawn_cli
from tests.integration.invalidators import running_invalidators
from tests.integration.kafka_tools import caught_up, ensure_topic, records_after
from tests.integration.mirrored import (
    MirroredStack,
    log_ends,
    mirror_environment,
    records_by_event_id,
)
from tests.waiting import wait_until

EU_ORDERS = mirrored_topic("eu", ORDERS)
"""eu's orders.events on us's cluster."""
MIRRORED_WITHIN_S = 60.0
"""From a publish in eu to its purge in us (link, MirrorMaker, invalidator), at most."""

Generations = dict[str, bytes | str | None]
"""Event id -> the generation token of its namespace (None: never purged)."""


def _use_us(
    monkeypatch: pytest.MonkeyPatch, settings: InvalidatorSettings, mirrored: MirroredStack
) -> InvalidatorSettings:
    """Region us's settings on its cluster, and the `cli` fixture's environment set to them."""
    us = mirrored.settings(settings, "us")
    for name, value in mirror_environment(us).items():
        monkeypatch.setenv(name, value)
    return us


async def _publish(publisher: EventPublisher, run: str, count: int) -> dict[str, BoundNamespace]:
    """`count` OrderCreated of new orders: event id -> the order's namespace."""
    published = {}
    for i in range(count):
        envelope = await publisher.publish(
            OrderCreated(order_id=f"o-{run}-{i}", company_id=f"c-{run}", total_cents=i),
            tenant="acme",
            aggregate_version=1,
        )
        published[str(envelope.event_id)] = ORDER.bind(order_id=f"o-{run}-{i}")
    return published


async def _generations(client: RedisClient, namespaces: dict[str, BoundNamespace]) -> Generations:
    """The generation token of each event's namespace in `client`'s region."""
    return {event_id: await client.get(generation_key(ns)) for event_id, ns in namespaces.items()}


def _all_purged_again(
    client: RedisClient, namespaces: dict[str, BoundNamespace], before: Generations
) -> Callable[[], Awaitable[bool]]:
    """A `wait_until` condition: every namespace has a generation token other than `before`'s."""

    async def check() -> bool:
        now = await _generations(client, namespaces)
        return all(now[e] is not None and now[e] != before[e] for e in namespaces)

    return check


async def _not_copied_after(
    kafka: KafkaConnection,
    start: dict[TopicPartition, int],
    plan: list[dict[str, Any]],
    events: dict[str, Any],
) -> set[str]:
    """The `events` with no mirrored copy at or after the position a rewind `plan` moved to
    (most of them: a late copy is a MirrorMaker task restart's, seconds' worth at most)."""
    rewound_to = {(row["topic"], row["partition"]): row["new"] for row in plan}
    copies = await records_by_event_id(kafka, start)
    kept = {
        e for e in events if all(r.offset < rewound_to[(r.topic, r.partition)] for r in copies[e])
    }
    assert len(kept) >= len(events) // 2, f"{len(events) - len(kept)} copied after T"
    return kept


async def test_rewind_to_a_time_purges_again_exactly_the_eu_events_published_after_it(
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    settings: InvalidatorSettings,
    redis_clients: dict[str, RedisClient],
    mirrored_stack: MirroredStack,
) -> None:
    us = _use_us(monkeypatch, settings, mirrored_stack)
    eu_kafka, group = mirrored_stack.clusters["eu"], us.group_id("us")
    topics = us.event_topics(CATALOGUE)
    client, run = redis_clients["us"], uuid.uuid4().hex[:8]
    eu_start = await log_ends(eu_kafka, [ORDERS])
    us_start = await log_ends(us.kafka, [EU_ORDERS])
    async with (
        EventPublisher(eu_kafka, source="orders-api-eu") as eu_publisher,
        running_invalidators(us, CATALOGUE, regions=["us"]),
    ):
        before_t = await _publish(eu_publisher, run + "a", 12)
        # T right after A's acknowledgements: A is still on its way through the link, so a
        # MirrorMaker that stamped records on arrival would put A after T.
        boundary = datetime.now(UTC)

        async def clock_moved() -> bool:
            return datetime.now(UTC) - boundary > timedelta(milliseconds=20)

        await wait_until(clock_moved, within=5, what="the clock to pass T")
        after_t = await _publish(eu_publisher, run + "b", 12)
        everything = {**before_t, **after_t}
        none = dict.fromkeys(everything)
        await wait_until(
            _all_purged_again(client, everything, none),
            within=MIRRORED_WITHIN_S,
            what="eu's events purged in us",
            interval=0.1,
        )
        await wait_until(
            lambda: caught_up(us.kafka, group, topics),
            within=60,
            what="us's group to commit the log end",
            interval=0.1,
        )

    # MirrorMaker kept each record's timestamp (and its type): T finds the same events on both.
    in_eu = await records_by_event_id(eu_kafka, eu_start)
    in_us = await records_by_event_id(us.kafka, us_start)
    for event_id in everything:
        (original,) = in_eu[event_id]
        mirrored = in_us[event_id]
        assert {(r.timestamp, r.timestamp_type) for r in mirrored} == {
            (original.timestamp, original.timestamp_type)
        }, event_id
    t_ms = boundary.timestamp() * 1000
    assert all(in_eu[e][0].timestamp < t_ms for e in before_t)
    assert all(in_eu[e][0].timestamp > t_ms for e in after_t)

    status, shown = await cli("offsets", "show", "--region", "us")
    (region,) = shown["regions"]
    assert status == 0 and region["group"] == group  # others may publish in eu meanwhile
    assert {p["topic"] for p in region["partitions"]} == set(topics)

    generations = await _generations(client, everything)
    status, plan = await cli(
        "offsets", "rewind", "--region", "us", "--to-datetime", boundary.isoformat(), "--execute"
    )
    assert status == 0 and plan["executed"], plan
    assert plan["events_to_replay"] >= len(after_t)
    replayed = {row["topic"] for row in plan["plan"] if row["new"] < row["current"]}
    assert EU_ORDERS in replayed
    status, shown = await cli("offsets", "show", "--region", "us")
    eu_orders_lag = sum(
        p["lag"] for p in shown["regions"][0]["partitions"] if p["topic"] == EU_ORDERS
    )
    assert status == 0 and eu_orders_lag >= len(after_t)

    async with running_invalidators(us, CATALOGUE, regions=["us"], from_log_end=False):
        await wait_until(
            _all_purged_again(client, after_t, generations),
            within=60,
            what="the events after T purged again in us",
            interval=0.1,
        )
        await wait_until(
            lambda: caught_up(us.kafka, group, topics),
            within=60,
            what="us's group to commit the log end again",
            interval=0.1,
        )
    again = await _generations(client, everything)
    # MirrorMaker delivers at least once: a before-T event it wrote again after T's position
    # (a task restarted from its last flushed source offset) is replayed by the rewind too, a
    # harmless extra purge. Every other before-T event keeps its token.
    kept = await _not_copied_after(us.kafka, us_start, plan["plan"], before_t)
    assert {e: again[e] for e in kept} == {e: generations[e] for e in kept}, (
        "events published in eu before T were purged again"
    )

    # A replay of the same window through the mirrored topic, without moving the group.
    committed = await committed_offsets(us.kafka, group)
    status, done = await cli(
        "replay", "--region", "us", "--from", boundary.isoformat(), "--topic", EU_ORDERS
    )
    assert status == 0 and done["events"] >= len(after_t), done
    replayed_again = await _generations(client, everything)
    assert all(replayed_again[e] != again[e] for e in after_t)
    # The same at-least-once copies are in the replayed window: only `kept` must keep its tokens.
    assert {e: replayed_again[e] for e in kept} == {e: again[e] for e in kept}
    assert await committed_offsets(us.kafka, group) == committed


async def test_topics_check_and_create_leave_mirrored_topics_to_mirrormaker(
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    settings: InvalidatorSettings,
    mirrored_stack: MirroredStack,
) -> None:
    us = _use_us(monkeypatch, settings, mirrored_stack)
    status, checked = await cli("topics", "check")
    rows = {row["topic"]: row for row in checked["topics"]}
    assert status == 0 and checked["missing"] == [] and checked["awaited_from_mirror"] == []
    for topic in us.mirrored_topics(CATALOGUE):
        assert rows[topic]["mirrored_from"] == "eu" and rows[topic]["status"] == "ok", rows[topic]

    # A region MirrorMaker does not mirror from (yet): its topics are awaited, not missing.
    absent_region = "ap" + uuid.uuid4().hex[:6]
    absent = [mirrored_topic(absent_region, topic) for topic in CATALOGUE.topics()]
    monkeypatch.setenv("INVALIDATOR_MIRRORED_FROM", f'["eu", "{absent_region}"]')
    status, checked = await cli("topics", "check")
    rows = {row["topic"]: row for row in checked["topics"]}
    assert status == 0 and checked["missing"] == []
    assert sorted(checked["awaited_from_mirror"]) == sorted(absent)
    assert all(rows[topic]["status"] == "awaited from MirrorMaker" for topic in absent)

    status, created = await cli("topics", "create")
    assert status == 0 and not set(created["created"]) & set(absent)
    async with admin_client(us.kafka) as admin:
        assert not set(await admin.list_topics()) & set(absent), "topics create made them"

    # The operators read what exists: an absent mirrored topic has nothing to show or replay.
    await start_at_log_end(us.kafka, us.group_id("us"), us.event_topics(CATALOGUE))
    status, shown = await cli("offsets", "show", "--region", "us")
    assert status == 0, shown
    assert not {p["topic"] for p in shown["regions"][0]["partitions"]} & set(absent)
    status, plan = await cli("offsets", "rewind", "--region", "us", "--by-duration", "1m")
    assert status == 0 and not {row["topic"] for row in plan["plan"]} & set(absent)
    status, dry = await cli("replay", "--region", "us", "--from", "1m", "--dry-run")
    assert status == 0, dry


async def test_an_undecodable_mirrored_record_is_dead_lettered_in_us_naming_its_source(
    monkeypatch: pytest.MonkeyPatch,
    settings: InvalidatorSettings,
    redis_clients: dict[str, RedisClient],
    mirrored_stack: MirroredStack,
) -> None:
    us = _use_us(monkeypatch, settings, mirrored_stack)
    run = uuid.uuid4().hex[:8]
    garbage = b"\xff\x00 not an event " + run.encode()
    valid = order_record(f"c-{run}", f"o-{run}")  # same key: the same partition, after it
    dead_letters = await log_ends(us.kafka, [DEAD_LETTER])
    async with running_invalidators(us, CATALOGUE, regions=["us"]):
        producer = bare_producer(mirrored_stack.clusters["eu"], linger_ms=0)
        await producer.start()
        try:
            await producer.send_and_wait(ORDERS, garbage, key=valid.key)
            await producer.send_and_wait(ORDERS, valid.value, key=valid.key, headers=valid.headers)
        finally:
            await producer.stop()

        async def valid_purged() -> bool:
            return bool(
                await redis_clients["us"].exists(
                    generation_key(ORDER.bind(order_id=valid.order_id))
                )
            )

        await wait_until(
            valid_purged,
            within=MIRRORED_WITHIN_S,
            what="the event after the undecodable one purged in us (the partition moved on)",
            interval=0.1,
        )

    (letter,) = await records_after(
        us.kafka, dead_letters, lambda record: record.value == garbage, count=1
    )
    headers = dict(letter.headers)
    assert headers[HEADER_GROUP] == us.group_id("us").encode()
    assert headers[HEADER_TOPIC] == EU_ORDERS.encode()
    assert headers[HEADER_SOURCE_CLUSTER] == b"eu"
    assert headers[HEADER_SOURCE_TOPIC] == ORDERS.encode()


async def test_an_invalidator_waits_for_absent_mirrored_topics_and_consumes_them_once_created(
    settings: InvalidatorSettings,
    redis_clients: dict[str, RedisClient],
    mirrored_stack: MirroredStack,
    tmp_path: Path,
) -> None:
    # MirrorMaker mirrors only the stack's topics (topics.txt), which exist: a region it does
    # not mirror from yet stands for a new one, and the test creates its topics and copies an
    # event into one as MirrorMaker would.
    absent_region = "ap" + uuid.uuid4().hex[:6]
    us = mirrored_stack.settings(settings, "us").model_copy(
        update={"mirrored_from": ["eu", absent_region]}
    )
    absent = sorted(mirrored_topic(absent_region, topic) for topic in CATALOGUE.topics())
    present = mirrored_stack.settings(settings, "us").event_topics(CATALOGUE)
    await start_at_log_end(us.kafka, us.group_id("us"), present)
    log = tmp_path / "invalidator-us.log"
    env = {"INVALIDATOR_GROUP_PREFIX": us.group_prefix, **mirror_environment(us)}
    process = spawn_cli("run", "--region", "us", env=env, output=log)
    try:

        async def logged(text: str) -> bool:
            assert process.poll() is None, log.read_text()[-3000:]
            return text in log.read_text()

        await wait_until(
            lambda: logged(f"waiting for topic(s) {','.join(absent)}"),
            within=60,
            what=f"the invalidator to say which topics it waits for ({log})",
            interval=0.2,
        )
        await wait_until(
            lambda: logged("assigned"), within=60, what=f"the group's partitions ({log})"
        )
        for topic in absent:
            await ensure_topic(us.kafka, topic, partitions=3)
        record = order_record(f"c-{absent_region}", f"o-{absent_region}")
        producer = bare_producer(us.kafka, linger_ms=0)
        await producer.start()
        try:
            await producer.send_and_wait(
                mirrored_topic(absent_region, ORDERS),
                record.value,
                key=record.key,
                headers=record.headers,
            )
        finally:
            await producer.stop()

        async def purged() -> bool:
            assert process.poll() is None, log.read_text()[-3000:]
            namespace = ORDER.bind(order_id=record.order_id)
            return bool(await redis_clients["us"].exists(generation_key(namespace)))

        await wait_until(
            purged, within=60, what=f"the event of the new topic purged in us ({log})", interval=0.2
        )
        assert "appeared; consuming them" in log.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        async with admin_client(us.kafka) as admin:
            existing = set(await admin.list_topics()) & set(absent)
            if existing:
                await admin.delete_topics(sorted(existing))
