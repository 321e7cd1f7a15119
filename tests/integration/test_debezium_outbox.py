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
from producers.outbox import OutboxRelay, add_event, add_events, create_outbox_table
from producers.publisher import EventToPublish
from tests.integration.debezium import ConnectWorker, outbox_connector
from tests.integration.kafka_tools import ensure_topic, records_after
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
        committed = {order_id: [] for order_id in orders}
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
