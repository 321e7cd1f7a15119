"""Kafka helpers for integration tests: waiting for catch-up, creating a topic, reading records."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from contracts import KafkaConnection
from invalidator.operators import group_lag
from invalidator.operators._offsets import admin_client, kafka_consumer, until_listed


async def caught_up(kafka: KafkaConnection, group_id: str, topics: list[str]) -> bool:
    """Whether `group_id` committed the log end of every partition of `topics`."""
    return all(p.lag == 0 for p in (await group_lag(kafka, group_id, topics)).values())


async def ensure_topic(
    kafka: KafkaConnection, topic: str, *, partitions: int, configs: dict[str, str] | None = None
) -> None:
    """Create `topic` unless it exists (the broker does not create topics on first use).

    configs: the topic's settings (e.g. `max.message.bytes`), when it is created here.
    """
    async with admin_client(kafka) as admin:
        if topic not in await admin.list_topics():
            # A concurrent run may create it meanwhile.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(topic, partitions, replication_factor=1, topic_configs=configs)]
                )
    await until_listed(kafka, [topic], within=30.0)


async def delete_topic(kafka: KafkaConnection, topic: str) -> None:
    """Delete `topic` (a test's own)."""
    async with admin_client(kafka) as admin:
        await admin.delete_topics([topic])


@contextlib.asynccontextmanager
async def _reading_from(
    kafka: KafkaConnection, start: dict[TopicPartition, int]
) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer outside every group, assigned the partitions of `start` at their offsets."""
    async with kafka_consumer(kafka) as consumer:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        yield consumer


async def records_after(
    kafka: KafkaConnection,
    start: dict[TopicPartition, int],
    matching: Callable[[Any], bool],
    *,
    count: int,
    within: float = 30.0,
) -> list[Any]:
    """The first `count` records at or after `start` for which `matching(record)` holds; fails
    naming what was found when fewer arrive within `within` seconds."""
    found: list[Any] = []
    async with _reading_from(kafka, start) as consumer:
        deadline = time.monotonic() + within
        while len(found) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            found += [r for records in batch.values() for r in records if matching(r)]
    assert len(found) >= count, f"{len(found)} of {count} matching records: {found[:3]}"
    return found


async def records_to_end(
    kafka: KafkaConnection, start: dict[TopicPartition, int], *, within_s: float = 30.0
) -> list[Any]:
    """Every record from `start` up to the log end each partition had when called; fails when
    reading them takes longer than `within_s` seconds."""
    found: list[Any] = []
    async with _reading_from(kafka, start) as consumer:
        ends = await consumer.end_offsets(list(start))
        remaining = {tp for tp, offset in start.items() if ends[tp] > offset}
        deadline = time.monotonic() + within_s
        while remaining:
            if time.monotonic() > deadline:
                raise AssertionError(f"reading {sorted(remaining)} took over {within_s:.0f}s")
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batch.items():
                found += [r for r in records if r.offset < ends[tp]]
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    return found


async def all_caught_up(kafka: KafkaConnection, group_ids: list[str], topics: list[str]) -> bool:
    """Whether every group of `group_ids` committed the log end of every partition of `topics`."""
    for group_id in group_ids:
        if not await caught_up(kafka, group_id, topics):
            return False
    return True
