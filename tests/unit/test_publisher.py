"""EventPublisher without a broker, through FastStream's TestKafkaBroker."""

from __future__ import annotations

import asyncio

from faststream.kafka import KafkaMessage, TestKafkaBroker

from contracts import Event, KafkaConnection
from contracts.orders import CATALOGUE, OrderCancelled
from producers import EventPublisher


async def test_publish_keys_by_aggregate_and_sends_type_headers() -> None:
    publisher = EventPublisher(KafkaConnection(), source="orders-api")
    received: asyncio.Queue[KafkaMessage] = asyncio.Queue()

    @publisher.broker.subscriber("orders.events")
    async def capture(message: KafkaMessage) -> None:
        await received.put(message)

    async with TestKafkaBroker(publisher.broker):
        envelope = await publisher.publish(
            OrderCancelled(order_id="o-9", company_id="c-1", reason="customer asked"),
            tenant="acme",
            aggregate_version=4,
        )
        message = await asyncio.wait_for(received.get(), timeout=5)

    assert message.raw_message.key == b"order:o-9"
    assert message.headers["event-type"] == "orders.OrderCancelled"
    assert message.headers["schema-version"] == "1"
    assert message.headers["event-id"] == str(envelope.event_id)
    decoded = CATALOGUE.schemas.decode(message.body)
    assert isinstance(decoded, Event)
    assert decoded.envelope == envelope
    assert decoded.envelope.source == "orders-api"
    assert decoded.envelope.aggregate_version == 4
