"""EventPublisher without a broker, through FastStream's TestKafkaBroker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from faststream.kafka import KafkaMessage, TestKafkaBroker

from contracts import Event, EventEnvelope, KafkaConnection
from contracts.example_orders import CATALOGUE, OrderCancelled, OrderStatusChanged
from producers import EnvelopeToPublish, EventPublisher, EventToPublish, PublishBatchError


def _key(message: KafkaMessage) -> bytes | None:
    """The key of the one record `message` was consumed from (these subscribers take no
    batches)."""
    record = message.raw_message
    assert not isinstance(record, tuple)
    key: bytes | None = record.key
    return key


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

    assert _key(message) == b"order:o-9"
    assert message.headers["event-type"] == "orders.OrderCancelled"
    assert message.headers["schema-version"] == "1"
    assert message.headers["event-id"] == str(envelope.event_id)
    decoded = CATALOGUE.schemas.decode(message.body)
    assert isinstance(decoded, Event)
    assert decoded.envelope == envelope
    assert decoded.envelope.source == "orders-api"
    assert decoded.envelope.aggregate_version == 4


async def test_publish_many_keeps_keys_headers_and_order_per_aggregate() -> None:
    publisher = EventPublisher(KafkaConnection(), source="orders-relay")
    received: list[KafkaMessage] = []

    @publisher.broker.subscriber("orders.events")
    async def capture(message: KafkaMessage) -> None:
        received.append(message)

    earlier = EventEnvelope.wrap(
        OrderCancelled(order_id="o-2", company_id="c-1", reason="outbox row"),
        source="orders-api",
        tenant="acme",
        aggregate_version=9,
    )
    batch: list[EventToPublish | EnvelopeToPublish] = [
        EventToPublish(
            OrderStatusChanged(
                order_id="o-1", company_id="c-1", old_status="placed", new_status="paid"
            ),
            tenant="acme",
            aggregate_version=1,
        ),
        EnvelopeToPublish(earlier, "orders.events"),
        EventToPublish(
            OrderStatusChanged(
                order_id="o-1", company_id="c-1", old_status="paid", new_status="shipped"
            ),
            tenant="acme",
            aggregate_version=2,
        ),
    ]
    async with TestKafkaBroker(publisher.broker):
        envelopes = await publisher.publish_many(batch)

    assert [e.aggregate_version for e in envelopes] == [1, 9, 2]
    assert envelopes[1] == earlier
    assert [_key(m) for m in received] == [b"order:o-1", b"order:o-2", b"order:o-1"]
    for message, envelope in zip(received, envelopes, strict=True):
        assert message.headers["event-type"] == envelope.type
        assert message.headers["event-id"] == str(envelope.event_id)
        decoded = CATALOGUE.schemas.decode(message.body)
        assert isinstance(decoded, Event)
        assert decoded.envelope == envelope
    assert envelopes[0].source == "orders-relay"


async def test_publish_many_raises_naming_the_records_not_acknowledged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publisher = EventPublisher(KafkaConnection(), source="orders-relay")
    loop = asyncio.get_running_loop()
    sent: list[bytes] = []

    async def send(body: bytes, topic: str, **options: Any) -> asyncio.Future[None]:
        confirmation: asyncio.Future[None] = loop.create_future()
        if len(sent) == 1:
            confirmation.set_exception(KafkaTimeoutError("not acknowledged in time"))
        else:
            confirmation.set_result(None)
        sent.append(options["key"])
        return confirmation

    monkeypatch.setattr(publisher.broker, "publish", send)
    batch = [
        EventToPublish(
            OrderCancelled(order_id=f"o-{n}", company_id="c-1", reason="bulk"),
            tenant="acme",
            aggregate_version=n,
        )
        for n in range(3)
    ]
    with pytest.raises(PublishBatchError, match="1 of 3 events were not acknowledged") as raised:
        await publisher.publish_many(batch)

    assert sent == [b"order:o-0", b"order:o-1", b"order:o-2"]
    assert [e.aggregate_id for e, _ in raised.value.failed] == ["o-1"]
    assert isinstance(raised.value.failed[0][1], KafkaTimeoutError)
    assert [e.aggregate_id for e in raised.value.acknowledged] == ["o-0", "o-2"]


async def test_publish_many_fails_the_rest_when_a_send_cannot_be_queued(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publisher = EventPublisher(KafkaConnection(), source="orders-relay")
    loop = asyncio.get_running_loop()
    calls = 0

    async def send(body: bytes, topic: str, **options: Any) -> asyncio.Future[None]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("producer closed")
        confirmation: asyncio.Future[None] = loop.create_future()
        confirmation.set_result(None)
        return confirmation

    monkeypatch.setattr(publisher.broker, "publish", send)
    batch = [
        EventToPublish(
            OrderCancelled(order_id=f"o-{n}", company_id="c-1", reason="bulk"),
            tenant="acme",
            aggregate_version=n,
        )
        for n in range(3)
    ]
    with pytest.raises(PublishBatchError) as raised:
        await publisher.publish_many(batch)

    # A record after the failed one is never sent ahead of it.
    assert calls == 2
    assert [e.aggregate_id for e, _ in raised.value.failed] == ["o-1", "o-2"]
    assert [e.aggregate_id for e in raised.value.acknowledged] == ["o-0"]
