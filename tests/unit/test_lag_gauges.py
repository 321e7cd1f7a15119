"""The lag gauges of one invalidator: computed from the log ends the broker last told, so a paused
partition (which the group consumer no longer fetches) still shows what piles up behind it."""

from __future__ import annotations

import time
from types import SimpleNamespace

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from invalidator.metrics import InvalidatorMetrics, LogEnds
from invalidator.stats import InvalidatorStats

STUCK = TopicPartition("orders.events", 0)
"""Its batch was being purged when the partitions were paused: its last fetch told a log end."""
EMPTY_AT_PAUSE = TopicPartition("orders.events", 1)
"""It held nothing when the partitions were paused: no fetch of it told a log end."""


class PausedConsumer:
    """The group consumer's view while paused: the log end of its last fetch, none for a
    partition it never fetched a record of."""

    def assignment(self) -> set[TopicPartition]:
        return {STUCK, EMPTY_AT_PAUSE}

    def highwater(self, partition: TopicPartition) -> int | None:
        return {STUCK: 12}.get(partition)


class BrokerLogEnds:
    """The log ends the broker answered since the pause."""

    def log_end(self, partition: TopicPartition) -> int | None:
        return {STUCK: 60, EMPTY_AT_PAUSE: 7}[partition]


def _metrics(stats: InvalidatorStats, log_ends: LogEnds, *, paused: bool) -> InvalidatorMetrics:
    loop = SimpleNamespace(paused=paused, committer=SimpleNamespace(failures=0))
    return InvalidatorMetrics(
        region="eu",
        group="invalidator.eu",
        stats=stats,
        loop=loop,  # type: ignore[arg-type]
        targets={"eu"},
        consumer=PausedConsumer(),
        log_ends=log_ends,
        registry=CollectorRegistry(auto_describe=True),
    )


def _lag(metrics: InvalidatorMetrics) -> dict[tuple[str, int], float]:
    lag: dict[tuple[str, int], float] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name.startswith("invalidator_lag_"):
                key = (
                    sample.name.removeprefix("invalidator_lag_"),
                    int(sample.labels["partition"]),
                )
                lag[key] = sample.value
    return lag


def test_the_lag_of_paused_partitions_counts_what_the_broker_holds_behind_them() -> None:
    stats = InvalidatorStats()
    assigned_ms = time.time() * 1000 - 5000
    stats.starting({STUCK: 10, EMPTY_AT_PAUSE: 0}, assigned_ms)
    metrics = _metrics(stats, BrokerLogEnds(), paused=True)
    lag = _lag(metrics)
    assert lag[("records", 0)] == 60 - 10
    assert lag[("records", 1)] == 7
    assert lag[("seconds", 0)] >= 5
    assert lag[("seconds", 1)] >= 5


def test_a_fetch_fresher_than_the_broker_read_counts() -> None:
    stats = InvalidatorStats()
    stats.starting({STUCK: 10, EMPTY_AT_PAUSE: 0}, time.time() * 1000)

    class StaleBroker:
        def log_end(self, partition: TopicPartition) -> int | None:
            return {STUCK: 11}.get(partition)

    metrics = _metrics(stats, StaleBroker(), paused=False)
    lag = _lag(metrics)
    assert lag[("records", 0)] == 12 - 10
    assert (lag[("records", 1)], lag[("seconds", 1)]) == (0, 0)
