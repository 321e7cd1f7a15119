"""The Invalidator on stand-in parts: it starts them, joins the group, commits only what was
purged, and on stop commits and stops every part, also when a start fails.

The parts are the fakes of `loop_fakes`, with the lifecycle `invalidator.wiring` asks for; the
Invalidator, its rebalance listener and the loop are the real ones.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from aiokafka import TopicPartition

from contracts import RedisTarget
from contracts.example_orders import CATALOGUE
from invalidator import Invalidator, InvalidatorSettings
from invalidator.loop import InvalidationLoop, LoopTuning
from invalidator.outcome import BatchOutcome
from invalidator.stats import InvalidatorStats
from invalidator.wiring import MetricsEndpoints
from tests.unit.loop_fakes import (
    P0,
    P1,
    ClosingTargets,
    FakeDeadLetters,
    FakeGroupConsumer,
    invalidator_parts,
    order_record,
    until,
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


async def test_it_commits_only_what_was_purged_and_stops_every_part() -> None:
    records = {
        P0: [order_record(P0, i) for i in range(5)],
        P1: [order_record(P1, i) for i in range(2)],
    }
    parts, fetched, targets, events = invalidator_parts(records)
    invalidator = Invalidator(SETTINGS, region="eu", catalogue=CATALOGUE)
    running = asyncio.create_task(invalidator.run_on(parts))
    await asyncio.wait_for(invalidator.assigned.wait(), timeout=5)
    assert isinstance(parts.consumer, FakeGroupConsumer)
    assert parts.consumer.subscribed == CATALOGUE.topics()
    await until(lambda: fetched.committed() == {P0: 5, P1: 2})
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
    parts, _, _, events = invalidator_parts({P0: [order_record(P0, 0)]})
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
    parts, fetched, targets, events = invalidator_parts(
        {P0: [order_record(P0, i) for i in range(3)]}
    )
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

    records = {P0: [order_record(P0, i) for i in range(5)]}
    parts, fetched, _, _ = invalidator_parts(records)
    parts = dataclasses.replace(parts, listeners=(Listener(),))
    invalidator = Invalidator(SETTINGS, region="eu", catalogue=CATALOGUE)
    running = asyncio.create_task(invalidator.run_on(parts))
    await until(lambda: fetched.committed() == {P0: 5})
    invalidator.stop()
    await asyncio.wait_for(running, timeout=5)
    assert sum(heard) == 5

    served = MetricsEndpoints(
        region="eu",
        group="invalidator.eu",
        consumer=fetched,
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
