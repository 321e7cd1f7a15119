"""Kafka helpers for integration tests: log ends, committed offsets, starting a group at the end."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from contracts import KafkaConnection


async def partitions_of(kafka: KafkaConnection, topics: list[str]) -> list[TopicPartition]:
    """Every partition of `topics`."""
    consumer = AIOKafkaConsumer(**kafka.client_kwargs())
    await consumer.start()
    try:
        found = []
        for topic in topics:
            numbers = consumer.partitions_for_topic(topic)
            if numbers is None:
                await consumer._client.force_metadata_update()
                numbers = consumer.partitions_for_topic(topic)
            if not numbers:
                raise AssertionError(f"topic {topic!r} does not exist on the broker")
            found.extend(TopicPartition(topic, n) for n in sorted(numbers))
        return found
    finally:
        await consumer.stop()


async def end_offsets(kafka: KafkaConnection, topics: list[str]) -> dict[TopicPartition, int]:
    """The log end offset of every partition of `topics`."""
    partitions = await partitions_of(kafka, topics)
    consumer = AIOKafkaConsumer(**kafka.client_kwargs())
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return ends
    finally:
        await consumer.stop()


async def committed_offsets(kafka: KafkaConnection, group_id: str) -> dict[TopicPartition, int]:
    """The offsets `group_id` committed (partitions it never committed are absent)."""
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group_id)
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
    finally:
        await admin.close()


async def start_group_at_end(
    kafka: KafkaConnection, group_id: str, topics: list[str]
) -> dict[TopicPartition, int]:
    """Commit the log end of every partition for a new group, so it skips older tests' events."""
    ends = await end_offsets(kafka, topics)
    consumer = AIOKafkaConsumer(
        group_id=group_id, enable_auto_commit=False, **kafka.client_kwargs()
    )
    await consumer.start()
    try:
        consumer.assign(list(ends))
        await consumer.commit(dict(ends))
    finally:
        await consumer.stop()
    return ends


async def caught_up(kafka: KafkaConnection, group_id: str, topics: list[str]) -> bool:
    """Whether `group_id` committed the log end of every partition of `topics`."""
    ends = await end_offsets(kafka, topics)
    committed = await committed_offsets(kafka, group_id)
    return all(committed.get(tp, -1) >= end for tp, end in ends.items())
