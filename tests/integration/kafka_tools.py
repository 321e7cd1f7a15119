"""Kafka helpers for integration tests: waiting for catch-up, creating a topic."""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from contracts import KafkaConnection
from invalidator.offsets import group_lag


async def caught_up(kafka: KafkaConnection, group_id: str, topics: list[str]) -> bool:
    """Whether `group_id` committed the log end of every partition of `topics`."""
    return all(p.lag == 0 for p in (await group_lag(kafka, group_id, topics)).values())


async def ensure_topic(kafka: KafkaConnection, topic: str, *, partitions: int) -> None:
    """Create `topic` unless it exists (the broker does not create topics on first use)."""
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            # A concurrent run may create it meanwhile.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(topic, partitions, replication_factor=1)])
    finally:
        await admin.close()
