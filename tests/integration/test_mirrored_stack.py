"""The local stack's mirrored topology (`stack.sh up --mirrored`): a record published in one
region's cluster arrives in the other region's as `<region>.<topic>`, through MirrorMaker 2 and
the delayed link, with its value, key, headers, partition and timestamp kept. Fails (never skips)
when the mirrored stack cannot be started."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.link import Link
from bench.stack import start_mirrored_stack
from invalidator.operators._offsets import partitions_of

pytestmark = pytest.mark.timeout(900)

TOPIC = "orders.events"
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def mirrored() -> dict[str, str]:
    """Every variable `stack.sh up --mirrored` exports (it starts what is down)."""
    return start_mirrored_stack()


async def _reader(bootstrap: str, topic: str) -> AsyncGenerator[AIOKafkaConsumer, None]:
    """A bare consumer (no group) on every partition of `topic`, positioned at its log end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        partitions = await partitions_of(consumer, [topic])
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:
            await consumer.position(tp)  # the end is fixed before anything is produced
        yield consumer
    finally:
        await consumer.stop()


async def _first_matching(consumer: AIOKafkaConsumer, value: bytes, within_s: float) -> Any:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=200)
        for records in batch.values():
            for record in records:
                if record.value == value:
                    return record
    raise AssertionError(f"the record was not mirrored within {within_s:.0f}s")


@pytest.mark.parametrize(("source", "target"), [("eu", "us"), ("us", "eu")])
async def test_a_record_is_mirrored_to_the_other_region_as_it_was(
    mirrored: dict[str, str], source: str, target: str
) -> None:
    link = await Link.from_env(mirrored["MIRROR_LINK_CONTROL"]).status()
    assert not link.cut, "the link is cut (heal it: echo heal to its control port)"
    mirrored_topic = f"{source}.{TOPIC}"
    value = f'{{"test": "{uuid.uuid4()}"}}'.encode()
    headers = [("event-type", b"OrderUpdated"), ("empty", b""), ("trace", uuid.uuid4().bytes)]
    timestamp_ms = int(time.time() * 1000) - HOUR_MS  # an hour old: kept, not re-stamped

    readers = _reader(mirrored[f"MIRROR_KAFKA_{target.upper()}"], mirrored_topic)
    consumer = await anext(readers)
    try:
        producer = AIOKafkaProducer(
            bootstrap_servers=mirrored[f"MIRROR_KAFKA_{source.upper()}"], acks="all", linger_ms=0
        )
        await producer.start()
        try:
            sent_at = time.monotonic()
            metadata = await producer.send_and_wait(
                TOPIC, value, key=b"order-42", headers=headers, timestamp_ms=timestamp_ms
            )
        finally:
            await producer.stop()
        record = await _first_matching(consumer, value, within_s=60)
        took_s = time.monotonic() - sent_at
    finally:
        await readers.aclose()

    assert record.topic == mirrored_topic
    assert record.key == b"order-42"
    assert list(record.headers) == headers
    assert record.partition == metadata.partition
    assert record.timestamp == timestamp_ms
    assert record.timestamp_type == 0  # CreateTime, the source record's
    # The mirror's consumer reads the source through the link: at least its one-way delay.
    assert took_s >= link.delay_ms / 1000, f"{took_s * 1000:.1f} ms through the link"
