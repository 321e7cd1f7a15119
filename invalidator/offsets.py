"""Reading a group's position on the broker: log ends, committed offsets, lag per partition."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from contracts.connections import KafkaConnection


class UnknownTopicError(LookupError):
    """A topic the catalogue names does not exist on the broker."""


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """Where a group stands on one partition."""

    committed: int | None
    """The next offset the group will read, None if it never committed here."""
    end: int
    """The log end offset."""

    @property
    def lag(self) -> int:
        """Records not yet purged (all of them when nothing was committed)."""
        return self.end - (self.committed or 0)


async def end_offsets(kafka: KafkaConnection, topics: list[str]) -> dict[TopicPartition, int]:
    """The log end offset of every partition of `topics`."""
    consumer = AIOKafkaConsumer(**kafka.client_kwargs())
    await consumer.start()
    try:
        partitions: list[TopicPartition] = []
        for topic in topics:
            numbers = consumer.partitions_for_topic(topic)
            if not numbers:
                # The first metadata fetch may predate the topic's creation: ask once more.
                await consumer._client.force_metadata_update()
                numbers = consumer.partitions_for_topic(topic)
            if not numbers:
                raise UnknownTopicError(f"topic {topic!r} does not exist on the broker")
            partitions.extend(TopicPartition(topic, n) for n in sorted(numbers))
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return ends
    finally:
        await consumer.stop()


async def committed_offsets(kafka: KafkaConnection, group_id: str) -> dict[TopicPartition, int]:
    """The offsets `group_id` committed; partitions it never committed are absent."""
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group_id)
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
    finally:
        await admin.close()


async def group_lag(
    kafka: KafkaConnection, group_id: str, topics: list[str]
) -> dict[TopicPartition, PartitionLag]:
    """Committed offset, log end and lag of `group_id` on every partition of `topics`."""
    ends = await end_offsets(kafka, topics)
    committed = await committed_offsets(kafka, group_id)
    return {tp: PartitionLag(committed.get(tp), end) for tp, end in ends.items()}
