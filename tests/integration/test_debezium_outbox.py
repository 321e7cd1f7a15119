"""Debezium as the outbox relay, on the real PostgreSQL, Kafka Connect and broker: its records are
the relay's field by field (key, value bytes, header names/values/order, partition), and writes
through the outbox reach both regions' purges in commit order per aggregate.

The Connect worker is the local stack's (`stack.sh up --debezium`, started when down); each test
has its own database, connector and replication slot.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts import topics
from contracts.events import HEADER_EVENT_ID
from contracts.example_orders import (
    COMPANY_PROFILE,
    ORDER,
    CompanyRenamed,
    OrderCancelled,
    OrderCreated,
    OrderStatusChanged,
)
from contracts.layout import generation_key
from contracts.percentiles import percentile
from invalidator import Invalidator, InvalidatorSettings
from invalidator.operators import end_offsets
from producers import RedisClient
from producers.outbox import (
    OUTBOX_TABLE,
    OutboxRelay,
    add_event,
    add_events,
    create_outbox_table,
)
from producers.outbox.debezium import switch_statements
from producers.publisher import EventToPublish
from tests.integration.debezium import (
    ConnectWorker,
    execute,
    outbox_connector,
    own_connector_settings,
)
from tests.integration.kafka_tools import ensure_topic, records_after, records_to_end
from tests.waiting import wait_until

SOURCE = "orders-api-debezium-test"
ROUTE_PREFIX = "dbz."
"""Debezium's copy of the records goes to `dbz.<topic>`, beside the relay's."""
TOPIC_PARTITIONS = 6
"""As the stack's event topics (topics.txt): the same partitioner picks the same partition."""


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    created = create_async_engine(postgres_url)
    await create_outbox_table(created)
    yield created
    await created.dispose()


def _event_id(record: Any) -> str:
    return str(dict(record.headers)[HEADER_EVENT_ID].decode())


def _batch(run: str, n: int) -> list[EventToPublish]:
    """One service transaction's events: an order's life and its company's rename (non-ASCII)."""
    order, company = f"o-{run}-{n}", f"c-{run}-{n % 3}"
    return [
        EventToPublish(
            OrderCreated(order_id=order, company_id=company, total_cents=100 * n),
            tenant="acme",
            aggregate_version=1,
        ),
        EventToPublish(
            OrderStatusChanged(
                order_id=order, company_id=company, old_status="placed", new_status="paid"
            ),
            tenant="acme",
            aggregate_version=2,
        ),
        EventToPublish(
            OrderCancelled(order_id=order, company_id=company, reason=f"annulée n°{n} ✓"),
            tenant="acme",
            aggregate_version=3,
        ),
        EventToPublish(
            CompanyRenamed(company_id=company, name=f"Société Ünïcode {n}"),
            tenant="acme",
            aggregate_version=n + 1,
        ),
    ]


def _wire(record: Any, *, prefix: str = "") -> tuple[object, ...]:
    """What a consumer sees of a record, its topic without `prefix`."""
    return (
        record.topic.removeprefix(prefix),
        record.partition,
        record.key,
        record.value,
        [(name, bytes(value)) for name, value in record.headers],
    )


async def test_debezium_records_equal_the_relays_field_by_field(
    debezium_worker: ConnectWorker,
    postgres_url: str,
    engine: AsyncEngine,
    settings: InvalidatorSettings,
) -> None:
    relayed_topics = [topics.ORDERS, topics.COMPANIES]
    for topic in relayed_topics:
        await ensure_topic(settings.kafka, ROUTE_PREFIX + topic, partitions=TOPIC_PARTITIONS)
    relay_start = await end_offsets(settings.kafka, relayed_topics)
    debezium_start = await end_offsets(settings.kafka, [ROUTE_PREFIX + t for t in relayed_topics])
    run = uuid.uuid4().hex[:8]
    written: list[str] = []
    async with outbox_connector(debezium_worker, postgres_url, route_topic_prefix=ROUTE_PREFIX):
        for n in range(12):
            async with engine.begin() as connection:
                envelopes = await add_events(connection, _batch(run, n), source=SOURCE)
            written += [str(envelope.event_id) for envelope in envelopes]
        ours = set(written)
        from_debezium = await records_after(
            settings.kafka,
            debezium_start,
            lambda record: _event_id(record) in ours,
            count=len(written),
            within=60,
        )
    relay = OutboxRelay(engine, settings.kafka, batch_size=20)
    await relay.start()
    try:
        while await relay.relay_once():
            pass
    finally:
        await relay.stop_producer()
    from_relay = await records_after(
        settings.kafka, relay_start, lambda record: _event_id(record) in ours, count=len(written)
    )

    assert len(from_debezium) == len(from_relay) == len(written) == 48
    relayed = {_event_id(record): _wire(record) for record in from_relay}
    for record in from_debezium:
        assert _wire(record, prefix=ROUTE_PREFIX) == relayed[_event_id(record)], _event_id(record)
    # And in the same order per key (per partition, offsets follow commit order).
    for records in (from_debezium, from_relay):
        by_key: dict[bytes, list[str]] = {}
        for record in sorted(records, key=lambda r: (r.partition, r.offset)):
            by_key.setdefault(record.key, []).append(_event_id(record))
        for ids in by_key.values():
            assert ids == sorted(ids, key=written.index)


async def test_outbox_writes_reach_both_regions_through_debezium(
    debezium_worker: ConnectWorker,
    engine: AsyncEngine,
    settings: InvalidatorSettings,
    invalidators: dict[str, Invalidator],
    redis_clients: dict[str, RedisClient],
) -> None:
    run = uuid.uuid4().hex[:8]
    orders = [f"o-{run}-{i}" for i in range(20)]
    start = await end_offsets(settings.kafka, [topics.ORDERS])

    async def write(order_id: str, version: int) -> str:
        async with engine.begin() as connection:
            envelope = await add_event(
                connection,
                OrderStatusChanged(
                    order_id=order_id, company_id=f"c-{run}", old_status="placed", new_status="paid"
                ),
                source=SOURCE,
                tenant="acme",
                aggregate_version=version,
            )
        return str(envelope.event_id)

    async def purged_everywhere(keys: list[str]) -> bool:
        found = await asyncio.gather(*(client.exists(*keys) for client in redis_clients.values()))
        return all(count == len(keys) for count in found)

    postgres_url = engine.url.render_as_string(hide_password=False)
    async with outbox_connector(debezium_worker, postgres_url):
        committed: dict[str, list[str]] = {order_id: [] for order_id in orders}
        for version in (1, 2, 3):
            for order_id in orders:
                committed[order_id].append(await write(order_id, version))
        order_keys = [generation_key(ORDER.bind(order_id=order_id)) for order_id in orders]
        for key in order_keys:  # one key per call: the us region is a Redis Cluster
            await wait_until(
                lambda key=key: purged_everywhere([key]),  # type: ignore[misc]
                within=60,
                what=f"{key} purged in both regions",
            )

        # Commit -> purged in both regions, one write at a time.
        delays_ms = []
        for n in range(10):
            company_key = generation_key(COMPANY_PROFILE.bind(company_id=f"c-{run}-probe-{n}"))
            committed_at = time.monotonic()
            async with engine.begin() as connection:
                await add_event(
                    connection,
                    CompanyRenamed(company_id=f"c-{run}-probe-{n}", name="probe"),
                    source=SOURCE,
                    tenant="acme",
                    aggregate_version=1,
                )
            await wait_until(
                lambda key=company_key: purged_everywhere([key]),  # type: ignore[misc]
                within=30,
                what="the probe purged in both regions",
                interval=0.002,
            )
            delays_ms.append((time.monotonic() - committed_at) * 1000)
    print(
        f"commit -> purged in both regions through Debezium: p50 {percentile(delays_ms, 0.5):.1f}"
        f" ms, max {max(delays_ms):.1f} ms ({len(delays_ms)} writes)"
    )

    published = await records_after(
        settings.kafka,
        start,
        lambda record: record.key is not None and f"-{run}-".encode() in record.key,
        count=60,
    )
    for order_id, event_ids in committed.items():
        in_log = [
            _event_id(r)
            for r in sorted(published, key=lambda r: r.offset)
            if r.key == f"order:{order_id}".encode()
        ]
        assert in_log == event_ids, f"{order_id}: not in commit order"


async def test_switching_from_the_relay_to_debezium_loses_and_reorders_nothing(
    debezium_worker: ConnectWorker, engine: AsyncEngine, settings: InvalidatorSettings
) -> None:
    """docs/operations.md's switch while the service keeps writing: publication and slot made
    while the relay runs; the relay stopped once every row up to the slot is published; the
    connector started on that slot (snapshot.mode=no_data)."""
    run = uuid.uuid4().hex[:8]
    start = await end_offsets(settings.kafka, [topics.ORDERS])
    written: list[str] = []
    stop_writing = asyncio.Event()

    async def write_stream() -> None:
        version = 0
        while not stop_writing.is_set():
            version += 1
            for order in range(5):  # each order's events: versions 1, 2, 3...
                async with engine.begin() as connection:
                    envelope = await add_event(
                        connection,
                        OrderStatusChanged(
                            order_id=f"o-{run}-{order}",
                            company_id=f"c-{run}",
                            old_status="placed",
                            new_status="paid",
                        ),
                        source=SOURCE,
                        tenant="acme",
                        aggregate_version=version,
                    )
                written.append(str(envelope.event_id))
            await asyncio.sleep(0.01)  # pacing, not a synchronisation

    async def written_at_least(count: int) -> bool:
        return len(written) >= count

    relay = OutboxRelay(engine, settings.kafka, poll_interval_s=0.05)
    await relay.start()
    relaying = asyncio.create_task(relay.run())
    writing = asyncio.create_task(write_stream())
    postgres_url = engine.url.render_as_string(hide_password=False)
    connector = own_connector_settings(postgres_url)
    try:
        await wait_until(lambda: written_at_least(100), within=60, what="writes")
        for statement in switch_statements(connector):
            await execute(postgres_url, statement)
        async with engine.connect() as connection:
            # The relay deletes the rows it published: none left means none is pending.
            last_before_slot = await connection.scalar(select(func.max(OUTBOX_TABLE.c.id))) or 0

        await wait_until(
            lambda: _published_up_to(engine, last_before_slot),
            within=60,
            what="the relay up to the slot",
        )
        relay.stop()
        await relaying
        async with outbox_connector(debezium_worker, postgres_url, settings=connector):
            more = len(written) + 100
            await wait_until(lambda: written_at_least(more), within=60, what="more writes")
            stop_writing.set()
            await writing
            ours = set(written)
            published: list[Any] = []

            async def all_published() -> bool:
                published[:] = [
                    record
                    for record in await records_to_end(settings.kafka, start)
                    if _event_id(record) in ours
                ]
                return {_event_id(record) for record in published} == ours

            await wait_until(all_published, within=60, what="every event published", interval=0.5)
    finally:
        stop_writing.set()
        relay.stop()
        await asyncio.gather(relaying, writing, return_exceptions=True)
        await relay.stop_producer()

    first_seen = _first_deliveries(published)
    assert {event_id for ids in first_seen.values() for event_id in ids} == ours, "lost events"
    for ids in first_seen.values():
        assert ids == sorted(ids, key=written.index), "an aggregate's events out of order"
    print(f"switch: {len(published) - len(ours)} duplicates of {len(ours)} events")


async def _published_up_to(engine: AsyncEngine, last_id: int) -> bool:
    """Whether every outbox row up to `last_id` is published (deleted as its mark, or marked
    with a retention)."""
    async with engine.connect() as connection:
        pending = await connection.scalar(
            select(func.count()).where(
                OUTBOX_TABLE.c.published_at.is_(None), OUTBOX_TABLE.c.id <= last_id
            )
        )
    return pending == 0


def _first_deliveries(records: list[Any]) -> dict[bytes, list[str]]:
    """Key -> its event ids in the order of their first record on the log."""
    first_seen: dict[bytes, list[str]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        ids = first_seen.setdefault(record.key, [])
        if _event_id(record) not in ids:
            ids.append(_event_id(record))
    return first_seen
