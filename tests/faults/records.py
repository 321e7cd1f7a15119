"""Records as they go on the wire, valid and malformed, and publishing them with a raw producer.

A raw producer publishes thousands of records in one batch, faster than the publisher's
per-event path, and can publish what the publisher refuses to build (the malformed kinds).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata

from contracts import EventEnvelope, KafkaConnection, topics
from contracts.events import HEADER_EVENT_ID, HEADER_EVENT_TYPE, HEADER_SCHEMA_VERSION
from contracts.example_orders import OrderCreated

MALFORMED_KINDS = ("not_json", "no_envelope", "unknown_type", "newer_version", "glob_id")
"""What can be wrong with a record: every kind must be dead-lettered, none may stall."""


@dataclass(frozen=True, slots=True)
class WireRecord:
    """One record to publish: topic, key, value and headers."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    event_id: str


def wire(envelope: EventEnvelope, topic: str = topics.ORDERS) -> WireRecord:
    """`envelope` exactly as `EventPublisher` would publish it."""
    return WireRecord(
        topic,
        envelope.partition_key(),
        envelope.to_bytes(),
        [(name, value.encode()) for name, value in envelope.headers().items()],
        str(envelope.event_id),
    )


def malformed(kind: str, *, order_id: str) -> WireRecord:
    """A record on the orders topic that no consumer of the example catalogue can purge.

    kind: one of MALFORMED_KINDS. Every kind carries a fresh `event-id` header, so that its
    dead letters can be accounted per id.
    """
    good = EventEnvelope.wrap(
        OrderCreated(order_id=order_id, company_id="c-poison", total_cents=1),
        source="poison",
        tenant="acme",
        aggregate_version=1,
    )
    body = json.loads(good.to_bytes())
    headers = dict(good.headers())
    if kind == "not_json":
        value = f"not json {good.event_id}".encode()
    elif kind == "no_envelope":
        value = json.dumps({"hello": str(good.event_id)}).encode()
    elif kind == "unknown_type":
        body["type"] = headers[HEADER_EVENT_TYPE] = "orders.OrderTeleported"
        value = json.dumps(body).encode()
    elif kind == "newer_version":
        body["schema_version"] = 99
        headers[HEADER_SCHEMA_VERSION] = "99"
        value = json.dumps(body).encode()
    elif kind == "glob_id":
        body["payload"]["order_id"] = f"o-*?[{order_id}]"
        value = json.dumps(body).encode()
    else:
        raise ValueError(f"unknown kind {kind!r}; one of {MALFORMED_KINDS}")
    headers[HEADER_EVENT_ID] = str(good.event_id)
    return WireRecord(
        topics.ORDERS,
        good.partition_key(),
        value,
        [(name, text.encode()) for name, text in headers.items()],
        str(good.event_id),
    )


async def publish_raw(kafka: KafkaConnection, records: list[WireRecord]) -> list[RecordMetadata]:
    """Publish `records` in order with an idempotent `acks=all` producer; wait for every ack.
    Returns where each landed (topic, partition, offset), in the order of `records`."""
    producer = AIOKafkaProducer(
        acks="all", enable_idempotence=True, linger_ms=5, **kafka.client_kwargs()
    )
    await producer.start()
    try:
        sends = [
            await producer.send(r.topic, value=r.value, key=r.key, headers=r.headers)
            for r in records
        ]
        return list(await asyncio.gather(*sends))
    finally:
        await producer.stop()
