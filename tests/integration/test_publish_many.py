"""EventPublisher.publish_many on the real broker: every record arrives, keyed, with headers."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts import Event, topics
from contracts.events import HEADER_EVENT_ID, HEADER_EVENT_TYPE, HEADER_SCHEMA_VERSION
from contracts.example_orders import CATALOGUE, OrderCreated, OrderStatusChanged
from invalidator import InvalidatorSettings
from invalidator.operators import end_offsets
from producers import EventPublisher, EventToPublish

AGGREGATES = 20
VERSIONS = 5


async def test_publish_many_delivers_every_event_keyed_with_headers_in_aggregate_order(
    settings: InvalidatorSettings, publisher: EventPublisher
) -> None:
    suffix = uuid.uuid4().hex[:10]
    batch = []
    for version in range(VERSIONS):
        for n in range(AGGREGATES):
            order_id, company_id = f"o-{suffix}-{n}", f"c-{suffix}-{n % 3}"
            event = (
                OrderCreated(order_id=order_id, company_id=company_id, total_cents=100)
                if version == 0
                else OrderStatusChanged(
                    order_id=order_id,
                    company_id=company_id,
                    old_status="placed",
                    new_status="paid",
                )
            )
            batch.append(EventToPublish(event, tenant="acme", aggregate_version=version))
    before = await end_offsets(settings.kafka, [topics.ORDERS])

    envelopes = await publisher.publish_many(batch)

    after = await end_offsets(settings.kafka, [topics.ORDERS])
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **settings.kafka.client_kwargs())
    await consumer.start()
    received: list[tuple[bytes, dict[str, bytes], bytes]] = []
    try:
        partitions = [tp for tp in after if after[tp] > before[tp]]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, before[tp])
        wanted = sum(after[tp] - before[tp] for tp in partitions)
        read: dict[TopicPartition, int] = {}
        while sum(read.values()) < wanted:
            fetched = await consumer.getmany(timeout_ms=5000)
            assert fetched, "no record arrived within 5 s"
            for tp, records in fetched.items():
                kept = [r for r in records if r.offset < after[tp]]
                read[tp] = read.get(tp, 0) + len(kept)
                received.extend((r.key, dict(r.headers), r.value) for r in kept)
    finally:
        await consumer.stop()

    ours = {str(e.event_id): e for e in envelopes}
    mine = [r for r in received if r[1].get(HEADER_EVENT_ID, b"").decode() in ours]
    assert len(mine) == len(batch) == len(envelopes)
    versions_seen: dict[bytes, list[int]] = {}
    for key, headers, value in mine:
        envelope = ours[headers[HEADER_EVENT_ID].decode()]
        assert key == envelope.partition_key()
        assert headers[HEADER_EVENT_TYPE].decode() == envelope.type
        assert headers[HEADER_SCHEMA_VERSION].decode() == str(envelope.schema_version)
        decoded = CATALOGUE.schemas.decode(value)
        assert isinstance(decoded, Event)
        assert decoded.envelope == envelope
        versions_seen.setdefault(key, []).append(envelope.aggregate_version)
    # Records were read partition by partition in offset order: each aggregate in order.
    assert len(versions_seen) == AGGREGATES
    assert all(seen == list(range(VERSIONS)) for seen in versions_seen.values())
