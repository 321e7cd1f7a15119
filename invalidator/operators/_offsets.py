"""A group's position on the broker: log bounds, committed offsets, lag, members; committing.

Everything here talks to Kafka and nothing else; what to do with it is planned elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import for_code
from aiokafka.protocol.commit import OffsetFetchRequest

from contracts import kafka_clients
from contracts.connections import KafkaConnection
from contracts.errors import UnknownTopicError
from invalidator.operators._coordinator import until_coordinator_answers
from invalidator.start_position import offsets_at_time, resolve_start_from

_METADATA_RETRY_S = 0.05


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


@dataclass(frozen=True, slots=True)
class GroupMember:
    """One member of a consumer group."""

    client_id: str
    host: str


@dataclass(frozen=True, slots=True)
class GroupState:
    """A group's coordinator state (`Empty`, `Stable`, `Dead`, ...) and its members."""

    state: str
    members: tuple[GroupMember, ...]

    @property
    def active(self) -> bool:
        """Whether some consumer is in the group."""
        return bool(self.members)


@contextlib.asynccontextmanager
async def kafka_consumer(
    kafka: KafkaConnection, **options: object
) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer that commits nothing by itself (`options`: aiokafka's, e.g. a
    group_id), stopped on exit, and also when its start fails (aiokafka warns of an unclosed
    consumer otherwise)."""
    consumer = kafka_clients.kafka_consumer(kafka, **options)
    try:
        await consumer.start()
        yield consumer
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def admin_client(kafka: KafkaConnection) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on exit."""
    admin = kafka_clients.kafka_admin(kafka)
    try:
        await admin.start()
        yield admin
    finally:
        await admin.close()


async def partitions_of(consumer: AIOKafkaConsumer, topics: list[str]) -> list[TopicPartition]:
    """Every partition of `topics`; UnknownTopicError names a missing topic."""
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
    return partitions


async def until_listed(kafka: KafkaConnection, topics: list[str], *, within: float) -> None:
    """Wait until the broker's metadata lists every topic of `topics`: a topic is created by the
    controller and reaches the brokers' metadata a moment later, and a command run in between
    (an offset call, `invalidator run`) would find it missing. UnknownTopicError names those
    still missing after `within` seconds."""
    deadline = time.monotonic() + within
    async with kafka_consumer(kafka) as consumer:
        while missing := [t for t in topics if not consumer.partitions_for_topic(t)]:
            if time.monotonic() > deadline:
                raise UnknownTopicError(
                    f"topics {missing} created but not in the broker's metadata after {within} s"
                )
            await asyncio.sleep(_METADATA_RETRY_S)
            await consumer._client.force_metadata_update()


async def log_bounds(
    kafka: KafkaConnection, topics: list[str]
) -> dict[TopicPartition, tuple[int, int]]:
    """(log start, log end) of every partition of `topics`."""
    async with kafka_consumer(kafka) as consumer:
        partitions = await partitions_of(consumer, topics)
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
    return {tp: (starts[tp], ends[tp]) for tp in partitions}


async def end_offsets(kafka: KafkaConnection, topics: list[str]) -> dict[TopicPartition, int]:
    """The log end offset of every partition of `topics`."""
    async with kafka_consumer(kafka) as consumer:
        partitions = await partitions_of(consumer, topics)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    return ends


async def offsets_at(
    kafka: KafkaConnection, partitions: list[TopicPartition], timestamp_ms: int
) -> dict[TopicPartition, int]:
    """The first offset at or after `timestamp_ms` per partition; the log end where no record
    is that late."""
    async with kafka_consumer(kafka) as consumer:
        return await offsets_at_time(consumer, partitions, timestamp_ms)


async def record_timestamps(
    kafka: KafkaConnection, offsets: dict[TopicPartition, int]
) -> dict[TopicPartition, int | None]:
    """The timestamp (ms) of the record at each offset, None where there is none to read."""
    found = await records_at(kafka, list(offsets.items()))
    return {
        tp: None if (record := found.get((tp, offset))) is None else record.timestamp
        for tp, offset in offsets.items()
    }


async def records_at(
    kafka: KafkaConnection, positions: list[tuple[TopicPartition, int]]
) -> dict[tuple[TopicPartition, int], ConsumerRecord[bytes, bytes] | None]:
    """The record read at each (partition, offset): None past the log end or when none came.

    Retention or compaction may have removed the record asked for, and another one is read
    instead (or none): compare the record's offset with the one asked for.
    """
    records: dict[tuple[TopicPartition, int], ConsumerRecord[bytes, bytes] | None] = dict.fromkeys(
        positions
    )
    readable = [(tp, offset) for tp, offset in positions if offset >= 0]
    if not readable:
        return records
    async with kafka_consumer(kafka) as consumer:
        partitions = sorted({tp for tp, _ in readable})
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp, offset in readable:
            if offset >= ends[tp]:
                continue
            consumer.seek(tp, offset)
            batch = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
            fetched = batch.get(tp, [])
            records[(tp, offset)] = fetched[0] if fetched else None
    return records


async def _fetch_committed(admin: AIOKafkaAdminClient, group_id: str) -> dict[TopicPartition, int]:
    # Not admin.list_consumer_group_offsets: it ignores the response's top-level error code,
    # so a coordinator still loading its offsets would read as "this group never committed".
    coordinator = await admin.find_coordinator(group_id)
    response = await admin._send_request(OffsetFetchRequest(group_id, None), coordinator)
    if getattr(response, "error_code", 0):
        raise for_code(response.error_code)(f"cannot fetch the offsets of group {group_id}")
    offsets: dict[TopicPartition, int] = {}
    for topic, partitions in response.topics:
        for partition, offset, _metadata, error_code in partitions:
            if error_code:
                raise for_code(error_code)(f"cannot fetch {topic}[{partition}] of {group_id}")
            if offset >= 0:
                offsets[TopicPartition(topic, partition)] = offset
    return offsets


async def committed_offsets(kafka: KafkaConnection, group_id: str) -> dict[TopicPartition, int]:
    """The offsets `group_id` committed; partitions it never committed are absent."""
    async with admin_client(kafka) as admin:
        return await until_coordinator_answers(
            lambda: _fetch_committed(admin, group_id), group_id=group_id
        )


async def group_state(kafka: KafkaConnection, group_id: str) -> GroupState:
    """The coordinator's view of `group_id`: its state and members."""

    async def describe() -> dict[str, Any]:
        response = await admin.describe_consumer_groups([group_id])
        described: dict[str, Any] = response[0].to_object()["groups"][0]
        if described["error_code"]:
            raise for_code(described["error_code"])(f"cannot describe group {group_id}")
        return described

    async with admin_client(kafka) as admin:
        group = await until_coordinator_answers(describe, group_id=group_id)
    return GroupState(
        state=group["state"],
        members=tuple(
            GroupMember(member["client_id"], member["client_host"]) for member in group["members"]
        ),
    )


async def group_exists(kafka: KafkaConnection, group_id: str) -> bool:
    """Whether the broker knows `group_id` at all."""
    async with admin_client(kafka) as admin:
        groups = await until_coordinator_answers(admin.list_consumer_groups, group_id=group_id)
    return any(name == group_id for name, _ in groups)


async def commit_group_offsets(
    kafka: KafkaConnection, group_id: str, offsets: dict[TopicPartition, int]
) -> None:
    """Commit `offsets` for `group_id` from outside the group (the group must have no member)."""
    async with kafka_consumer(kafka, group_id=group_id) as consumer:
        consumer.assign(list(offsets))
        await until_coordinator_answers(lambda: consumer.commit(dict(offsets)), group_id=group_id)


async def start_at_log_end(
    kafka: KafkaConnection, group_id: str, topics: list[str]
) -> dict[TopicPartition, int]:
    """Commit the log end of every partition of `topics` for `group_id` (a group with no
    member), so that it starts with the next event and skips older ones; returns the ends."""
    ends = await end_offsets(kafka, topics)
    await commit_group_offsets(kafka, group_id, ends)
    return ends


async def group_lag(
    kafka: KafkaConnection, group_id: str, topics: list[str]
) -> dict[TopicPartition, PartitionLag]:
    """Committed offset, log end and lag of `group_id` on every partition of `topics`."""
    ends = await end_offsets(kafka, topics)
    committed = await committed_offsets(kafka, group_id)
    return {tp: PartitionLag(committed.get(tp), end) for tp, end in ends.items()}


async def uncommitted_starts(
    kafka: KafkaConnection,
    bounds: dict[TopicPartition, tuple[int, int]],
    start_from: str,
) -> dict[TopicPartition, int]:
    """Where a member would start on each partition of `bounds` if it found no commit there.

    kafka: the cluster. bounds: (log start, log end) per partition. start_from: the setting.
    """
    position = resolve_start_from(start_from)
    if position == "earliest":
        return {tp: start for tp, (start, _) in bounds.items()}
    if position == "latest":
        return {tp: end for tp, (_, end) in bounds.items()}
    return await offsets_at(kafka, sorted(bounds), int(position.timestamp() * 1000))
