"""The Invalidator on stand-in parts: it starts them, joins the group, commits only what was
purged, and on stop commits and stops every part, also when a start fails.

The parts are the fakes of `test_loop` with the lifecycle `invalidator.wiring` asks for; the
Invalidator, its rebalance listener and the loop are the real ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import ConsumerRebalanceListener, TopicPartition

from contracts import RedisTarget
from contracts.example_orders import CATALOGUE
from invalidator import Invalidator, InvalidatorSettings
from invalidator.loop import InvalidationLoop, LoopTuning
from invalidator.outcome import BatchOutcome
from invalidator.stats import InvalidatorStats
from invalidator.wiring import InvalidatorParts, MetricsEndpoints
from tests.unit.test_loop import (
    P0,
    P1,
    FakeConsumer,
    FakeDeadLetters,
    FakeTargets,
    _record,
    _until,
)

SETTINGS = InvalidatorSettings(
    regions={"eu": [RedisTarget(name="a", url="redis://127.0.0.1:1/0")]},
    batch_max_records=3,
    fetch_timeout_ms=5,
    retry_initial_s=0.001,
    retry_max_s=0.004,
    commit_interval_ms=0,
    metrics_port=None,
    stats_file=None,
)


class FakeGroupConsumer:
    """A `FakeConsumer` that joins a group: `start` assigns every partition it holds."""

    def __init__(self, records: FakeConsumer, events: list[str]) -> None:
        self.records = records
        self.events = events
        self.topics: Sequence[str] = ()
        self.listener: ConsumerRebalanceListener | None = None
        self.fail_start = False

    def subscribe(self, *, topics: Sequence[str], listener: ConsumerRebalanceListener) -> None:
        self.topics, self.listener = topics, listener

    async def start(self) -> None:
        self.events.append("consumer started")
        if self.fail_start:
            raise ConnectionError("no broker")
        assert self.listener is not None
        await self.listener.on_partitions_assigned(self.records.assignment())

    async def stop(self) -> None:
        self.events.append("consumer stopped")

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


def _parts(
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


async def test_it_commits_only_what_was_purged_and_stops_every_part() -> None:
    records = {P0: [_record(P0, i) for i in range(5)], P1: [_record(P1, i) for i in range(2)]}
    parts, fetched, targets, events = _parts(records)
    invalidator = Invalidator(SETTINGS, region="eu", catalogue=CATALOGUE)
    running = asyncio.create_task(invalidator.run_on(parts))
    await asyncio.wait_for(invalidator.assigned.wait(), timeout=5)
    assert parts.consumer.topics == CATALOGUE.topics()  # type: ignore[attr-defined]
    await _until(lambda: fetched.committed() == {P0: 5, P1: 2})
    invalidator.stop()
    await asyncio.wait_for(running, timeout=5)

    assert targets.purged["a"] == targets.purged["b"] >= {f"order:o{i}" for i in range(5)}
    for committed in targets.committed_when_purged:  # no commit ran ahead of a purge
        assert committed.get(P0, 0) <= 5 and committed.get(P1, 0) <= 2
    assert invalidator.stats.events == 7
    assert invalidator.metrics_address == ("127.0.0.1", 9)
    assert events == [
        "dead letters started",
        "metrics started",
        "consumer started",
        "metrics stopped",
        "targets closed",
        "dead letters stopped",
        "consumer stopped",
    ]


async def test_a_failed_start_still_stops_every_part_started_or_not() -> None:
    parts, _, _, events = _parts({P0: [_record(P0, 0)]})
    parts.consumer.fail_start = True  # type: ignore[attr-defined]
    invalidator = Invalidator(SETTINGS, region="eu", catalogue=CATALOGUE)
    with pytest.raises(ConnectionError, match="no broker"):
        await asyncio.wait_for(invalidator.run_on(parts), timeout=5)
    assert events[-4:] == [
        "metrics stopped",
        "targets closed",
        "dead letters stopped",
        "consumer stopped",
    ]


async def test_stop_before_the_run_returns_after_joining_and_purges_nothing() -> None:
    parts, fetched, targets, events = _parts({P0: [_record(P0, i) for i in range(3)]})
    invalidator = Invalidator(SETTINGS, region="eu", catalogue=CATALOGUE)
    invalidator.stop()
    await asyncio.wait_for(invalidator.run_on(parts), timeout=5)
    assert targets.successes == [] and fetched.commits == []
    assert events[-1] == "consumer stopped"


def test_an_unknown_region_is_refused_before_anything_is_built() -> None:
    with pytest.raises(Exception, match="unknown region 'mars'; INVALIDATOR_REGIONS defines: eu"):
        Invalidator(SETTINGS, region="mars", catalogue=CATALOGUE)


class UnreadLogEnds:
    """Log ends never read: the lag comes from the fetches alone."""

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def log_end(self, partition: TopicPartition) -> int | None:
        return None


async def test_the_parts_listeners_hear_every_batch_and_serving_metrics_patches_no_loop() -> None:
    heard: list[int] = []

    class Listener:
        def batch_purged(self, outcome: BatchOutcome) -> None:
            heard.append(len(outcome.records))

    records = {P0: [_record(P0, i) for i in range(5)]}
    parts, fetched, _, _ = _parts(records)
    parts = dataclasses.replace(parts, listeners=(Listener(),))
    invalidator = Invalidator(SETTINGS, region="eu", catalogue=CATALOGUE)
    running = asyncio.create_task(invalidator.run_on(parts))
    await _until(lambda: fetched.committed() == {P0: 5})
    invalidator.stop()
    await asyncio.wait_for(running, timeout=5)
    assert sum(heard) == 5

    served = MetricsEndpoints(
        region="eu",
        group="invalidator.eu",
        consumer=fetched,  # type: ignore[arg-type]
        log_ends=UnreadLogEnds(),
        targets={"a"},
        address=("127.0.0.1", 0),
        max_paused_s=30,
        max_idle_s=30,
    )
    stats = InvalidatorStats()
    loop = InvalidationLoop(
        fetched,
        ClosingTargets(fetched, []),
        FakeDeadLetters(),
        catalogue=CATALOGUE,
        name="invalidator.eu",
        tuning=LoopTuning.from_settings(SETTINGS),
        stats=stats,
        listeners=[served.histograms],
    )
    before = dict(vars(loop))
    await served.start(loop, stats)
    try:
        assert vars(loop) == before, "serving the metrics changed the loop"
    finally:
        await served.stop()
