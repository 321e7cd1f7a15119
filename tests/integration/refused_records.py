"""Records a topic refuses on purpose: a topic whose `max.message.bytes` lies between a small
record and a large one, so that the broker refuses the large one (MessageSizeTooLarge) and takes
the small ones. Raising the limit afterwards lets the refused record through."""

from __future__ import annotations

from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from contracts.connections import KafkaConnection
from contracts.events import EventEnvelope
from invalidator.operators._offsets import admin_client

BATCH_OVERHEAD = 120
"""A one-record batch's bytes besides the value and headers (batch header, record framing)."""
MAX_MESSAGE_BYTES_KEY = "max.message.bytes"


def kafka_headers(sent: EventEnvelope) -> list[tuple[str, bytes]]:
    """`sent`'s headers as a Kafka record carries them."""
    return [(name, value.encode()) for name, value in sent.headers().items()]


def record_bytes(sent: EventEnvelope) -> int:
    """The value's and headers' bytes of `sent`'s record."""
    headers = sum(len(name) + len(value) for name, value in kafka_headers(sent))
    return len(sent.to_bytes()) + headers


def refusing_limit(small: list[EventEnvelope], large: EventEnvelope) -> int:
    """A `max.message.bytes` that takes a batch of any one of `small` and refuses `large`."""
    largest_small = max(record_bytes(sent) for sent in small)
    limit = (largest_small + record_bytes(large)) // 2 + BATCH_OVERHEAD
    assert largest_small + BATCH_OVERHEAD < limit < record_bytes(large), "sizes too close"
    return limit


async def create_limited_topic(
    kafka: KafkaConnection, topic: str, *, max_message_bytes: int, partitions: int = 1
) -> None:
    """Create `topic` (replication factor 1) refusing batches over `max_message_bytes`."""
    async with admin_client(kafka) as admin:
        await admin.create_topics(
            [
                NewTopic(
                    topic,
                    partitions,
                    1,
                    topic_configs={MAX_MESSAGE_BYTES_KEY: str(max_message_bytes)},
                )
            ]
        )


async def raise_limit(kafka: KafkaConnection, topic: str, *, max_message_bytes: int) -> None:
    """Let `topic` take batches up to `max_message_bytes` (the broker applies it shortly after)."""
    async with admin_client(kafka) as admin:
        await admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    topic,
                    configs={MAX_MESSAGE_BYTES_KEY: str(max_message_bytes)},
                )
            ]
        )
