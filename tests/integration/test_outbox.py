"""The transactional outbox on a real database and the real broker: what a transaction adds
is relayed once committed, never when rolled back, in id order per aggregate, and purged."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import TopicPartition
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts import topics
from contracts.example_orders import ORDER, OrderStatusChanged
from contracts.layout import generation_key
from invalidator import Invalidator, InvalidatorSettings
from invalidator.operators import end_offsets
from producers import RedisClient
from producers.outbox import OUTBOX_TABLE, OutboxRelay, add_event, create_outbox_table
from tests.integration.kafka_tools import records_after
from tests.relay_fakes import assert_each_write_wakes
from tests.waiting import wait_until

SOURCE = "orders-api-outbox-test"
service_tables = MetaData()
ORDERS = Table(
    "orders",
    service_tables,
    Column("order_id", String(64), primary_key=True),
    Column("status", String(32), nullable=False),
    Column("version", Integer, nullable=False),
)
"""The service's own table: the change the events describe."""


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    created = create_async_engine(database_url)
    await create_outbox_table(created)
    async with created.begin() as connection:
        await connection.run_sync(service_tables.create_all)
    yield created
    await created.dispose()


async def _write(engine: AsyncEngine, order_id: str, version: int, *, commit: bool = True) -> str:
    """One service transaction: the order's new status and its event; the event id."""
    connection = await engine.connect()
    try:
        transaction = await connection.begin()
        if version == 1:
            await connection.execute(
                insert(ORDERS).values(order_id=order_id, status="placed", version=1)
            )
        else:
            await connection.execute(
                ORDERS.update()
                .where(ORDERS.c.order_id == order_id)
                .values(status=f"s{version}", version=version)
            )
        envelope = await add_event(
            connection,
            OrderStatusChanged(
                order_id=order_id, company_id="c-outbox", old_status="placed", new_status="paid"
            ),
            source=SOURCE,
            tenant="acme",
            aggregate_version=version,
        )
        await (transaction.commit() if commit else transaction.rollback())
        return str(envelope.event_id)
    finally:
        await connection.close()


def _assert_in_commit_order(
    published: list[Any], committed: dict[str, list[str]], failure: str
) -> None:
    """Each order's records in the log carry its committed event ids in commit order."""
    for order_id, event_ids in committed.items():
        key = f"order:{order_id}".encode()
        in_log = [
            dict(r.headers)["event-id"].decode()
            for r in sorted(published, key=lambda r: r.offset)
            if r.key == key
        ]
        assert in_log == event_ids, f"{order_id}: {failure}"


async def test_committed_events_are_relayed_in_order_and_purged_and_rolled_back_ones_not(
    engine: AsyncEngine,
    settings: InvalidatorSettings,
    invalidators: dict[str, Invalidator],
    redis_clients: dict[str, RedisClient],
) -> None:
    start = await end_offsets(settings.kafka, [topics.ORDERS])
    run = uuid.uuid4().hex[:8]
    orders = [f"o-{run}-{i}" for i in range(20)]
    committed: dict[str, list[str]] = {order_id: [] for order_id in orders}
    for version in (1, 2, 3):
        for order_id in orders:
            committed[order_id].append(await _write(engine, order_id, version))
    rolled_back = await _write(engine, orders[0], 4, commit=False)
    async with engine.connect() as connection:
        rows = (await connection.execute(select(func.count()).select_from(OUTBOX_TABLE))).one()
    assert rows[0] == 60, "a rolled-back transaction left an outbox row"

    relay = OutboxRelay(engine, settings.kafka, batch_size=25)
    await relay.start()
    try:
        while await relay.relay_once():
            pass
    finally:
        await relay.stop_producer()
    assert relay.stats.published == 60 and relay.stats.batches == 3
    assert await relay.pending() == (0, 0.0)

    for region, client in redis_clients.items():

        async def purged(client: RedisClient = client) -> bool:
            keys = [generation_key(ORDER.bind(order_id=order_id)) for order_id in orders]
            return bool(sum(await asyncio.gather(*(client.exists(key) for key in keys))) == 20)

        await wait_until(purged, within=30, what=f"every order's namespace purged in {region}")

    published = await records_after(
        settings.kafka,
        start,
        lambda record: record.key is not None and f"-{run}-".encode() in record.key,
        count=60,
    )
    ids = [dict(record.headers)["event-id"].decode() for record in published]
    assert rolled_back not in ids
    _assert_in_commit_order(published, committed, "not in commit order")
    assert len({TopicPartition(r.topic, r.partition) for r in published}) > 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_on_postgresql_a_row_is_deleted_once_kafka_acknowledged_it(
    engine: AsyncEngine, settings: InvalidatorSettings
) -> None:
    await _write(engine, f"o-{uuid.uuid4().hex[:8]}", 1)
    relay = OutboxRelay(engine, settings.kafka)  # no retention: the mark deletes
    await relay.start()
    try:
        assert await relay.relay_once() == 1
        assert await _rows(engine) == 0
        assert await relay.cleanup() == 0
    finally:
        await relay.stop_producer()


async def test_with_a_retention_published_rows_are_marked_and_deleted_after_it(
    engine: AsyncEngine, settings: InvalidatorSettings
) -> None:
    for _ in range(2):
        await _write(engine, f"o-{uuid.uuid4().hex[:8]}", 1)
    relay = OutboxRelay(engine, settings.kafka, retention_s=0.2)
    await relay.start()
    try:
        assert await relay.relay_once() == 2
        assert await relay.pending() == (0, 0.0)
        assert await _rows(engine) == 2, "the published rows were not kept for the retention"
        # SQLite's cleanup keeps the newest row (whose id it would give again).
        kept = 0 if engine.dialect.name == "postgresql" else 1

        async def deleted_after_the_retention() -> bool:
            await relay.cleanup()
            return await _rows(engine) == kept

        await wait_until(deleted_after_the_retention, within=10, what="the rows deleted")
    finally:
        await relay.stop_producer()


async def _rows(engine: AsyncEngine) -> int:
    """How many rows the outbox table holds."""
    async with engine.connect() as connection:
        return int(
            (await connection.execute(select(func.count()).select_from(OUTBOX_TABLE))).one()[0]
        )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_two_relays_on_postgresql_share_the_rows_and_keep_each_aggregates_order(
    engine: AsyncEngine, settings: InvalidatorSettings
) -> None:
    start = await end_offsets(settings.kafka, [topics.ORDERS])
    run = uuid.uuid4().hex[:8]
    orders = [f"o-{run}-{i}" for i in range(30)]
    committed: dict[str, list[str]] = {order_id: [] for order_id in orders}
    for version in range(1, 11):
        for order_id in orders:
            committed[order_id].append(await _write(engine, order_id, version))
    relays = [OutboxRelay(engine, settings.kafka, batch_size=7) for _ in range(2)]
    for relay in relays:
        await relay.start()
    try:

        async def drain(relay: OutboxRelay) -> None:
            while await relay.relay_once():
                pass

        await asyncio.gather(*(drain(relay) for relay in relays))
        assert await relays[0].pending() == (0, 0.0)
    finally:
        for relay in relays:
            await relay.stop_producer()
    assert all(relay.stats.published > 0 for relay in relays), "one relay did everything"
    assert sum(relay.stats.published for relay in relays) == 300, "a row published twice"
    published = await records_after(
        settings.kafka,
        start,
        lambda record: record.key is not None and f"-{run}-".encode() in record.key,
        count=300,
    )
    _assert_in_commit_order(published, committed, "overtaken across relays")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_commit_wakes_a_waiting_relay_on_postgresql_without_polling(
    engine: AsyncEngine, database_url: str, settings: InvalidatorSettings
) -> None:
    relay = OutboxRelay(engine, settings.kafka, poll_interval_s=60.0)
    # The writer is on an engine of its own, as in another process: only NOTIFY can wake the
    # relay (a commit on the relay's engine wakes it in the process too).
    writer = create_async_engine(database_url)
    await relay.start()
    try:
        await assert_each_write_wakes(
            relay, lambda _: _write(writer, f"o-{uuid.uuid4().hex[:8]}", 1)
        )
    finally:
        await writer.dispose()
