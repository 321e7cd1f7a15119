"""The outbox relay when Kafka refuses chosen rows: the refused row and the later rows of its key
stay unpublished and unmarked, every acknowledged row is marked, and the refused rows go out, in
order and once, when the broker takes them.

The refusal is made the quick way: the rows go to a topic of this test whose `max.message.bytes`
refuses one large row (MessageSizeTooLarge) and takes the small ones; raising the limit is the
recovery. Each key has a partition of its own, so that the refused key's batch holds none of the
other keys' rows.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts.events import EventEnvelope
from contracts.example_orders import OrderCancelled
from invalidator import InvalidatorSettings
from producers import EnvelopeToPublish
from producers.outbox import OutboxRelay, add_events, create_outbox_table
from tests.integration.kafka_tools import delete_topic, records_to_end
from tests.integration.refused_records import (
    create_limited_topic,
    raise_limit,
    refusing_limit,
)
from tests.relay_fakes import published_ids
from tests.waiting import wait_until

SOURCE = "orders-api-refusals-test"
PARTITIONS = 3
ONE_MIB = 1_048_588
"""Kafka's default `max.message.bytes`: the limit once the broker takes the refused row."""


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    created = create_async_engine(database_url)
    await create_outbox_table(created)
    yield created
    await created.dispose()


def _order_ids_in_their_own_partitions(run: str, count: int) -> list[str]:
    """`count` order ids whose events' keys fall in `count` different partitions."""
    partitioner, partitions = DefaultPartitioner(), list(range(PARTITIONS))
    found: dict[int, str] = {}
    for n in range(1000):
        order_id = f"o-{run}-{n}"
        partition = partitioner(f"order:{order_id}".encode(), partitions, partitions)
        found.setdefault(partition, order_id)
        if len(found) == count:
            return list(found.values())
    raise AssertionError(f"no {count} keys in different partitions among 1000")


def _envelope(order_id: str, version: int, *, large: bool = False) -> EventEnvelope:
    reason = "x" * 500 if large else "x"
    event = OrderCancelled(order_id=order_id, company_id="c-refusals", reason=reason)
    return EventEnvelope.wrap(event, source=SOURCE, tenant="acme", aggregate_version=version)


async def _write(engine: AsyncEngine, topic: str, envelopes: list[EventEnvelope]) -> None:
    """One service transaction per envelope, in order (the outbox ids follow)."""
    for envelope in envelopes:
        async with engine.begin() as connection:
            await add_events(connection, [EnvelopeToPublish(envelope, topic)], source=SOURCE)


def _in_log_by_key(records: list[Any]) -> dict[bytes, list[str]]:
    """Each key's event ids in the topic, in log order."""
    by_key: dict[bytes, list[str]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(record.key, []).append(dict(record.headers)["event-id"].decode())
    return by_key


def _ids(envelopes: list[EventEnvelope]) -> list[str]:
    return [str(envelope.event_id) for envelope in envelopes]


async def test_refused_rows_hold_their_key_back_and_go_out_after_recovery(
    engine: AsyncEngine, settings: InvalidatorSettings
) -> None:
    run = uuid.uuid4().hex[:8]
    refused_order, other_order, third_order = _order_ids_in_their_own_partitions(run, 3)
    r1, r2, r3, r4 = (
        _envelope(refused_order, 1),
        _envelope(refused_order, 2, large=True),
        _envelope(refused_order, 3),
        _envelope(refused_order, 4),
    )
    o1, o2, p1 = _envelope(other_order, 1), _envelope(other_order, 2), _envelope(third_order, 1)
    small = [r1, r3, r4, o1, o2, p1]
    topic = f"tests.outbox-refusals.{run}"
    await create_limited_topic(
        settings.kafka, topic, max_message_bytes=refusing_limit(small, r2), partitions=PARTITIONS
    )
    start = {TopicPartition(topic, partition): 0 for partition in range(PARTITIONS)}
    relay = OutboxRelay(engine, settings.kafka)
    await relay.start()
    try:
        # Before any refusal: the refused key's first row and another key's go out.
        await _write(engine, topic, [r1, o1])
        assert await relay.relay_once() == 2
        # The large row, two later rows of its key, and rows of other keys between them.
        await _write(engine, topic, [r2, o2, r3, p1, r4])
        written = [r1, o1, r2, o2, r3, p1, r4]
        assert await relay.relay_once() == 2, "only the other keys' rows are acknowledged"
        assert relay.stats.publish_failures == 1
        assert await published_ids(engine, _ids(written)) == set(_ids([r1, o1, o2, p1]))
        with pytest.raises(RuntimeError, match="none of 3 rows was acknowledged"):
            await relay.relay_once()  # still refused: nothing of the key overtakes it
        assert await published_ids(engine, _ids(written)) == set(_ids([r1, o1, o2, p1]))
        assert (await relay.pending())[0] == 3
        in_log = _in_log_by_key(await records_to_end(settings.kafka, start))
        assert in_log[r1.partition_key()] == _ids([r1]), "a refused key's later row got out"
        assert in_log[o1.partition_key()] == _ids([o1, o2])
        assert in_log[p1.partition_key()] == _ids([p1])

        await raise_limit(settings.kafka, topic, max_message_bytes=ONE_MIB)

        async def relayed_all() -> bool:
            with contextlib.suppress(RuntimeError):  # until the broker applies the new limit
                await relay.relay_once()
            return (await relay.pending())[0] == 0

        await wait_until(relayed_all, within=30, what="the refused rows relayed after recovery")
        assert await published_ids(engine, _ids(written)) == set(_ids([r1, r2, r3, r4, o1, o2, p1]))
        in_log = _in_log_by_key(await records_to_end(settings.kafka, start))
        assert in_log[r1.partition_key()] == _ids([r1, r2, r3, r4]), "not once each, in order"
        assert in_log[o1.partition_key()] == _ids([o1, o2])
        assert in_log[p1.partition_key()] == _ids([p1])
    finally:
        await relay.stop_producer()
        await delete_topic(settings.kafka, topic)
    assert await published_ids(engine, _ids(written)) == set(_ids([r1, r2, r3, r4, o1, o2, p1]))
