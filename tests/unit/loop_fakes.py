"""Stand-ins for Kafka and Redis around the real invalidation loop and Invalidator, shared by
the unit tests: a consumer of in-memory partitions, two Redis targets, a dead-letter topic, and
the lifecycle `invalidator.wiring` asks of each part."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError
from aiokafka.structs import ConsumerRecord
from redis.exceptions import ConnectionError as RedisConnectionError

from contracts.events import EventEnvelope, TraceContext
from contracts.example_orders import CATALOGUE, OrderStatusChanged
from invalidator.loop import InvalidationLoop, LoopTuning
from invalidator.outcome import BatchListener, Rejection
from invalidator.planner import NamespaceKeys
from invalidator.stats import InvalidatorStats
from invalidator.wiring import InvalidatorParts

P0 = TopicPartition("orders.events", 0)
P1 = TopicPartition("orders.events", 1)
FAST = LoopTuning(
    batch_max_records=3,
    fetch_timeout_ms=5,
    retry_initial_s=0.001,
    retry_max_s=0.004,
    commit_interval_s=0.0,
)


def order_record(
    tp: TopicPartition,
    offset: int,
    *,
    company: str = "c1",
    order_id: str | None = None,
    value: bytes | None = None,
    trace: TraceContext | None = None,
) -> Any:
    """A record at `offset` of `tp`: an order's status change (order `o<offset>` unless
    `order_id` says), or `value` as its body."""
    event = OrderStatusChanged(
        order_id=order_id or f"o{offset}",
        company_id=company,
        old_status="placed",
        new_status="paid",
    )
    envelope = EventEnvelope.wrap(
        event, source="test", tenant="t", aggregate_version=1, trace=trace
    )
    headers = [(name, text.encode()) for name, text in envelope.headers().items()]
    body = envelope.to_bytes() if value is None else value
    return ConsumerRecord(
        tp.topic, tp.partition, offset, int(time.time() * 1000), 0, None, body, None, 0, 0, headers
    )


class FakeConsumer:
    """Partitions of records; getmany honours positions, pauses and max_records."""

    def __init__(self, records: dict[TopicPartition, list[Any]]) -> None:
        self.records = records
        self.position = dict.fromkeys(records, 0)
        self.paused: set[TopicPartition] = set()
        self.commits: list[dict[TopicPartition, int]] = []
        self.commits_in_flight = 0
        self.most_commits_in_flight = 0
        self.commit_gate: asyncio.Event | None = None
        self.failing_commits = 0
        self.fetches_during_commit = 0
        self.per_fetch = 10_000

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]:
        if self.commits_in_flight:
            self.fetches_during_commit += 1
        batch: dict[TopicPartition, list[Any]] = {}
        room = min(max_records or 10_000, self.per_fetch)
        for tp, records in self.records.items():
            if tp in self.paused or room == 0:
                continue
            start = self.position[tp]
            taken = records[start : start + room]
            if taken:
                batch[tp] = taken
                self.position[tp] += len(taken)
                room -= len(taken)
        if not batch:
            await asyncio.sleep(timeout_ms / 1000)  # the real call blocks up to its timeout
        return batch

    def assignment(self) -> set[TopicPartition]:
        return set(self.records)

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused.difference_update(partitions)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits_in_flight += 1
        self.most_commits_in_flight = max(self.most_commits_in_flight, self.commits_in_flight)
        try:
            if self.commit_gate is not None:
                await self.commit_gate.wait()
            if self.failing_commits:
                self.failing_commits -= 1
                raise CommitFailedError("rebalanced")
            self.commits.append(dict(offsets))
        finally:
            self.commits_in_flight -= 1

    def committed(self) -> dict[TopicPartition, int]:
        merged: dict[TopicPartition, int] = {}
        for commit in self.commits:
            merged.update(commit)
        return merged


class FakeTargets:
    """Two targets; `failures[name]` purges of that target fail (an outage) before one
    succeeds."""

    def __init__(self, consumer: FakeConsumer) -> None:
        self.failures = {"a": 0, "b": 0}
        self.refused_keys: set[str] = set()
        """Target a fails every purge that holds one of these keys, with `refusal`."""
        self.refusal: Exception = RedisConnectionError("Connection closed by server.")
        self.purged: dict[str, set[str]] = {"a": set(), "b": set()}
        self.successes: list[tuple[str, set[str]]] = []
        self.committed_when_purged: list[dict[TopicPartition, int]] = []
        self.committed_after_purge: list[tuple[set[str], dict[TopicPartition, int]]] = []
        """Each purge attempt's keys, and the offsets committed when it ended."""
        self._consumer = consumer
        self.gate: asyncio.Event | None = None
        """When set up, every purge waits for it."""

    def names(self) -> set[str]:
        return set(self.failures)

    async def purge(
        self, by_namespace: NamespaceKeys, *, only: set[str] | None = None
    ) -> dict[str, Exception]:
        self.committed_when_purged.append(self._consumer.committed())
        if self.gate is not None:
            await self.gate.wait()
        failed: dict[str, Exception] = {}
        keys = {key for _, keys in by_namespace for key in keys}
        for name in sorted(only or self.failures):
            if name == "a" and keys & self.refused_keys:
                failed[name] = self.refusal
            elif self.failures[name]:
                self.failures[name] -= 1
                failed[name] = RedisConnectionError("Error 111 connecting to redis")
            else:
                self.purged[name].update(keys)
                self.successes.append((name, keys))
        # A yield to the event loop, not a wait: a commit the loop set off before this purge
        # (never after it) runs now, so the snapshot below sees it.
        await asyncio.sleep(0)
        self.committed_after_purge.append((keys, self._consumer.committed()))
        return failed


class FakeDeadLetters:
    """`failures` sends fail with `error` before one succeeds."""

    def __init__(self) -> None:
        self.sent: list[Rejection] = []
        self.failures = 0
        self.error: Exception = ConnectionError("broker away")

    async def send(self, rejected: Sequence[Rejection]) -> None:
        if self.failures:
            self.failures -= 1
            raise self.error
        self.sent.extend(rejected)


def loop_on_fakes(
    records: dict[TopicPartition, list[Any]], *, listeners: Sequence[BatchListener] = ()
) -> tuple[InvalidationLoop, FakeConsumer, FakeTargets, FakeDeadLetters]:
    consumer = FakeConsumer(records)
    targets = FakeTargets(consumer)
    dead = FakeDeadLetters()
    loop = InvalidationLoop(
        consumer,
        targets,
        dead,
        catalogue=CATALOGUE,
        name="test",
        tuning=FAST,
        listeners=listeners,
    )
    return loop, consumer, targets, dead


async def run_until(
    loop: InvalidationLoop, done: Callable[[], bool], *, within: float = 5.0
) -> None:
    """Run the loop until `done()` holds, then stop it and wait for its final commit."""
    running = asyncio.create_task(loop.run())
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, "the loop did not get there in time"
        assert not running.done(), running
        await asyncio.sleep(0.001)
    loop.stop()
    await asyncio.wait_for(running, timeout=5)


async def until(done: Callable[[], bool], *, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, "the loop did not get there in time"
        await asyncio.sleep(0.001)


class FakeGroupConsumer:
    """A `FakeConsumer` that joins a group: `start` assigns every partition it holds."""

    def __init__(self, records: FakeConsumer, events: list[str]) -> None:
        self.records = records
        self.events = events
        self.subscribed: Sequence[str] = ()
        self.listener: ConsumerRebalanceListener | None = None
        self.fail_start = False

    def subscribe(self, *, topics: Sequence[str], listener: ConsumerRebalanceListener) -> None:
        self.subscribed, self.listener = topics, listener

    async def start(self) -> None:
        self.events.append("consumer started")
        if self.fail_start:
            raise ConnectionError("no broker")
        assert self.listener is not None
        await self.listener.on_partitions_assigned(self.records.assignment())

    async def stop(self) -> None:
        self.events.append("consumer stopped")

    async def topics(self) -> set[str]:
        """The cluster's topics: those of the partitions it holds."""
        return {partition.topic for partition in self.records.records}

    async def committed(self, partition: TopicPartition) -> int:
        return self.records.committed().get(partition, 0)

    async def position(self, partition: TopicPartition) -> int:
        return self.records.position[partition]

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]:
        return await self.records.getmany(
            *partitions, timeout_ms=timeout_ms, max_records=max_records
        )

    def assignment(self) -> set[TopicPartition]:
        return self.records.assignment()

    def pause(self, *partitions: TopicPartition) -> None:
        self.records.pause(*partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.records.resume(*partitions)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await self.records.commit(offsets)


class ClosingTargets(FakeTargets):
    def __init__(self, consumer: FakeConsumer, events: list[str]) -> None:
        super().__init__(consumer)
        self.events = events

    async def close(self) -> None:
        self.events.append("targets closed")


class StartingDeadLetters(FakeDeadLetters):
    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    async def start(self) -> None:
        self.events.append("dead letters started")

    async def stop(self) -> None:
        self.events.append("dead letters stopped")


class FakeMetrics:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    async def start(self, loop: InvalidationLoop, stats: InvalidatorStats) -> tuple[str, int]:
        self.events.append("metrics started")
        return "127.0.0.1", 9

    async def stop(self) -> None:
        self.events.append("metrics stopped")


def invalidator_parts(
    records: dict[TopicPartition, list[Any]],
) -> tuple[InvalidatorParts, FakeConsumer, ClosingTargets, list[str]]:
    events: list[str] = []
    fetched = FakeConsumer(records)
    targets = ClosingTargets(fetched, events)
    parts = InvalidatorParts(
        FakeGroupConsumer(fetched, events),
        targets,
        StartingDeadLetters(events),
        metrics=FakeMetrics(events),
    )
    return parts, fetched, targets, events
