"""After a batch it gave up on, an idempotent producer session is replaced, and sends go on.

The gap is made the quick way: a topic whose `max.message.bytes` refuses one record that the
producer sends, after a first record gave the partition the producer's sequence. A Kafka
cluster down for longer than `request_timeout_ms` leaves the same gap (an expired batch); the
mirrored fault test with a region's Kafka down for 30 s covers that at full size.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, OutOfOrderSequenceNumber

from contracts.connections import KafkaConnection
from contracts.events import EventEnvelope
from contracts.example_orders import OrderCancelled
from contracts.renewing_producer import RenewingProducer
from invalidator import InvalidatorSettings
from producers import EventPublisher
from tests.integration.refused_records import (
    BATCH_OVERHEAD,
    create_limited_topic,
    kafka_headers,
    record_bytes,
    refusing_limit,
)


def envelope(reason: str) -> EventEnvelope:
    """An order's cancellation, whose `reason` sets its size."""
    event = OrderCancelled(order_id="o-1", company_id="c-1", reason=reason)
    return EventEnvelope.wrap(event, source="tests", tenant="acme", aggregate_version=1)


SMALL, LARGE = envelope("x"), envelope("x" * 500)


async def topic_refusing_the_large_record(kafka: KafkaConnection) -> str:
    """A new one-partition topic that takes SMALL's record and refuses LARGE's."""
    topic = f"tests.producer-sessions.{uuid.uuid4().hex[:8]}"
    await create_limited_topic(kafka, topic, max_message_bytes=refusing_limit([SMALL], LARGE))
    return topic


def idempotent_producer(kafka: KafkaConnection) -> AIOKafkaProducer:
    """An idempotent producer that sends records of any size up to 1 MiB (the broker judges)."""
    return AIOKafkaProducer(acks="all", enable_idempotence=True, **kafka.client_kwargs())


async def outcomes(send: Callable[[EventEnvelope], Awaitable[Any]]) -> list[str]:
    """Send SMALL, LARGE, SMALL, SMALL in turn: each one's outcome (`ok` or the error)."""
    seen = []
    for sent in (SMALL, LARGE, SMALL, SMALL):
        try:
            await asyncio.wait_for(send(sent), timeout=30)
        except (MessageSizeTooLargeError, OutOfOrderSequenceNumber) as error:
            seen.append(type(error).__name__)
        else:
            seen.append("ok")
    return seen


async def test_a_plain_aiokafka_producer_is_refused_for_good_after_a_refused_batch(
    settings: InvalidatorSettings,
) -> None:
    """Why RenewingProducer exists: when this fails, aiokafka repairs its sequence itself."""
    topic = await topic_refusing_the_large_record(settings.kafka)
    producer = idempotent_producer(settings.kafka)
    await producer.start()
    try:

        async def send(sent: EventEnvelope) -> Any:
            return await (await producer.send(topic, sent.to_bytes(), headers=kafka_headers(sent)))

        seen = await outcomes(send)
    finally:
        await producer.stop()
    assert seen == ["ok", "MessageSizeTooLargeError"] + ["OutOfOrderSequenceNumber"] * 2


@pytest.mark.parametrize("way", ["send", "send_many"])
async def test_renewing_producer_sends_again_after_a_refused_batch(
    settings: InvalidatorSettings, way: str
) -> None:
    topic = await topic_refusing_the_large_record(settings.kafka)
    async with RenewingProducer(
        lambda: idempotent_producer(settings.kafka), name="tests"
    ) as producer:

        async def send(sent: EventEnvelope) -> Any:
            if way == "send":
                return await (
                    await producer.send(topic, sent.to_bytes(), headers=kafka_headers(sent))
                )
            [outcome] = await producer.send_many(
                [(topic, sent.to_bytes(), None, kafka_headers(sent))]
            )
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        seen = await outcomes(send)
        assert seen == ["ok", "MessageSizeTooLargeError", "ok", "ok"]
        assert producer.renewals == 1


async def test_event_publisher_publishes_again_after_a_refused_batch(
    settings: InvalidatorSettings,
) -> None:
    topic = await topic_refusing_the_large_record(settings.kafka)
    async with EventPublisher(settings.kafka, source="tests") as publisher:

        async def send(sent: EventEnvelope) -> None:
            await publisher.publish_envelope(sent, topic=topic)

        seen = await outcomes(send)
        assert seen == ["ok", "MessageSizeTooLargeError", "ok", "ok"]
        assert publisher.renewals == 1


async def test_a_refusal_before_sending_keeps_the_session(settings: InvalidatorSettings) -> None:
    """A record over the producer's own `max_request_size` is refused before a sequence number
    is spent: no new session is needed, and none is started."""
    topic = await topic_refusing_the_large_record(settings.kafka)

    def strict_producer() -> AIOKafkaProducer:
        return AIOKafkaProducer(
            acks="all",
            enable_idempotence=True,
            max_request_size=record_bytes(SMALL) + BATCH_OVERHEAD,
            **settings.kafka.client_kwargs(),
        )

    async with RenewingProducer(strict_producer, name="tests") as producer:
        with pytest.raises(MessageSizeTooLargeError):
            await producer.send(topic, LARGE.to_bytes(), headers=kafka_headers(LARGE))
        await (await producer.send(topic, SMALL.to_bytes(), headers=kafka_headers(SMALL)))
        assert producer.renewals == 0
