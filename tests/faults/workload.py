"""Orders events for fault tests, each remembered by id with the namespace that proves its purge.

Every event is an `OrderStatusChanged` of a new order: the order's own namespace gets a
generation token in a region exactly when the event was purged there (`accounting.account`).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from bench.orders_load import bare_producer, order_record
from contracts import KafkaConnection
from contracts.events import HEADER_EVENT_ID
from contracts.example_orders import ORDER, OrderStatusChanged
from contracts.namespaces import BoundNamespace
from producers import EventPublisher

_SEND_CHUNK = 5_000
_COMPANIES = 100
_RETRY_BACKOFF_S = 0.1


@dataclass
class Published:
    """What a fault test published: event id -> namespace, and where each record landed."""

    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    """Prefixes the order ids, so that the run's namespaces are fresh in Redis."""
    namespaces: dict[str, BoundNamespace] = field(default_factory=dict)
    """Event id -> the order namespace its event purges (what `account` checks)."""
    positions: dict[str, tuple[TopicPartition, int]] = field(default_factory=dict)
    """Event id -> (partition, offset), for events produced by `produce_backlog`."""
    publish_retries: int = 0
    """Publishes that failed and were sent again (`publish_until_acknowledged`)."""

    def order_id(self, n: int) -> str:
        """The order id of the run's `n`th event."""
        return f"o-{self.run}-{n}"


async def produce_backlog(kafka: KafkaConnection, count: int, published: Published) -> None:
    """Produce `count` events fast (a raw idempotent acks=all producer) and remember each.

    kafka: the brokers.
    count: how many events.
    published: where each acknowledged event id, namespace and position is added.
    """
    start = len(published.namespaces)
    producer = bare_producer(kafka, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        for first in range(start, start + count, _SEND_CHUNK):
            numbers = range(first, min(first + _SEND_CHUNK, start + count))
            records = [
                order_record(f"c-{published.run}-{n % _COMPANIES}", published.order_id(n))
                for n in numbers
            ]
            sent = [
                await producer.send(r.topic, r.value, key=r.key, headers=r.headers) for r in records
            ]
            acknowledged = await asyncio.gather(*sent)
            for n, record, metadata in zip(numbers, records, acknowledged, strict=True):
                event_id = dict(record.headers)[HEADER_EVENT_ID].decode()
                published.namespaces[event_id] = ORDER.bind(order_id=published.order_id(n))
                published.positions[event_id] = (
                    TopicPartition(metadata.topic, metadata.partition),
                    metadata.offset,
                )
    finally:
        await producer.stop()


async def publish_until_acknowledged(publisher: EventPublisher, published: Published) -> None:
    """Publish the run's next event as a service would: retry the same envelope (same event id)
    after every error until the brokers acknowledge it, then remember it.

    publisher: a started EventPublisher.
    published: the acknowledged event's id and namespace are added here.
    """
    n = len(published.namespaces)
    event = OrderStatusChanged(
        order_id=published.order_id(n),
        company_id=f"c-{published.run}-{n % _COMPANIES}",
        old_status="placed",
        new_status="paid",
    )
    event_id = uuid.uuid4()
    while True:
        try:
            await publisher.publish(event, tenant="acme", aggregate_version=1, event_id=event_id)
        except Exception:  # any failure: a service publishes the same event again
            published.publish_retries += 1
            await asyncio.sleep(_RETRY_BACKOFF_S)
            continue
        published.namespaces[str(event_id)] = ORDER.bind(order_id=published.order_id(n))
        return
