"""Prometheus metrics of one invalidator, in a registry of its own.

The counters are read from `InvalidatorStats` and the loop at scrape time, so the loop counts
nothing twice (`InvalidatorMetrics`); only the histograms are fed, once per batch, by the
`BatchOutcome` the loop hands its listeners (`BatchHistograms`, wired when the loop is built).
Consumer lag is computed just before each scrape (`refresh_lag`), with no I/O: from the last
purged positions and the log ends a `LogEnds` read from the broker in the background (the
consumer's own fetches tell nothing of a paused partition).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Protocol

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from invalidator.loop import InvalidationLoop
from invalidator.outcome import BatchOutcome
from invalidator.stats import InvalidatorStats

_PURGE_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
_AGE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class PartitionPositions(Protocol):
    """What the lag needs of the consumer (aiokafka's `AIOKafkaConsumer` has it)."""

    def assignment(self) -> set[TopicPartition]: ...

    def highwater(self, partition: TopicPartition) -> int | None: ...


class LogEnds(Protocol):
    """The broker's log ends, as last read (`LogEndWatch` has it)."""

    def log_end(self, partition: TopicPartition) -> int | None:
        """The last log end read for `partition`; None before the first read."""


class BatchHistograms:
    """The histograms fed once per batch purged everywhere (a `BatchListener`): the purge's
    duration, and the age at purge of the batch's oldest event, local and per source region."""

    def __init__(self, *, region: str, group: str, registry: CollectorRegistry) -> None:
        """region, group: the metrics' labels; registry: where they are registered."""
        self._labels = {"region": region, "group": group}
        self._purge_seconds = Histogram(
            "invalidator_purge_duration_seconds",
            "Time of a batch's successful purge on every target.",
            ["region", "group"],
            buckets=_PURGE_BUCKETS_S,
            registry=registry,
        ).labels(**self._labels)
        self._age_seconds = Histogram(
            "invalidator_event_age_at_purge_seconds",
            "Publish to purged everywhere, of each batch's oldest event.",
            ["region", "group"],
            buckets=_AGE_BUCKETS_S,
            registry=registry,
        ).labels(**self._labels)
        self._remote_age_seconds = Histogram(
            "invalidator_remote_event_age_at_purge_seconds",
            "Published in the source region to purged here, of each batch's oldest event "
            "mirrored from there (the mirrored topology's cross-region lag).",
            ["region", "group", "source"],
            buckets=_AGE_BUCKETS_S,
            registry=registry,
        )

    def batch_purged(self, outcome: BatchOutcome) -> None:
        """Observe a batch purged everywhere."""
        self._purge_seconds.observe(outcome.duration_s)
        self._age_seconds.observe(max(0.0, outcome.oldest_age_s))
        if outcome.remote_oldest_ms:
            for source, age_s in outcome.remote_age_s().items():
                self._remote_age_seconds.labels(**self._labels, source=source).observe(
                    max(0.0, age_s)
                )


class InvalidatorMetrics(Collector):
    """The counters and gauges of one region's invalidator (labels `region` and `group`), read
    at scrape time, and the exposition of its whole registry."""

    def __init__(
        self,
        *,
        region: str,
        group: str,
        stats: InvalidatorStats,
        loop: InvalidationLoop,
        targets: set[str],
        consumer: PartitionPositions,
        log_ends: LogEnds,
        registry: CollectorRegistry,
    ) -> None:
        """stats, loop: what the counters and the paused gauge are read from.
        targets: the region's target names (every batch is purged on all of them).
        consumer: the assigned partitions, and the log end its last fetch of each told.
        log_ends: the log ends read from the broker (fresher than the fetches' while paused).
        registry: the registry to register in and to expose (the histograms' one).
        """
        self._labels = {"region": region, "group": group}
        self._stats = stats
        self._loop = loop
        self._targets = sorted(targets)
        self._consumer = consumer
        self._log_ends = log_ends
        self._lag: dict[TopicPartition, tuple[int, float]] = {}
        self.registry = registry
        self.registry.register(self)

    def refresh_lag(self) -> None:
        """Compute the lag of every assigned partition (no I/O): records between the log end
        (the later of the broker's last answer and the last fetch's; 0 lag until either told
        one) and the last purged record, and seconds since the last purged record was published,
        or since the partition was assigned when none was purged there yet (0 when caught up)."""
        now_ms = time.time() * 1000
        lag: dict[TopicPartition, tuple[int, float]] = {}
        for tp in self._consumer.assignment():
            ends = (self._log_ends.log_end(tp), self._consumer.highwater(tp))
            known = [end for end in ends if end is not None]
            end = max(known) if known else None
            purged_to = self._stats.purged_to.get(tp)
            if end is None or purged_to is None:
                lag[tp] = (0, 0.0)
                continue
            records = max(0, end - purged_to)
            purged_at = self._stats.purged_at_ms.get(tp)
            seconds = 0.0 if records == 0 or purged_at is None else (now_ms - purged_at) / 1000
            lag[tp] = (records, max(0.0, seconds))
        self._lag = lag

    def exposition(self) -> bytes:
        """The text exposition format, lag refreshed first."""
        self.refresh_lag()
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        """The counters and gauges read from the stats and the loop (a custom collector)."""
        names, values = list(self._labels), list(self._labels.values())
        stats = self._stats
        for name, text, value in (
            (
                "invalidator_events_consumed",
                "Records purged everywhere or dead-lettered.",
                stats.events,
            ),
            ("invalidator_purge_retries", "Purge retries after an outage.", stats.purge_retries),
            ("invalidator_purge_errors", "Purge retries after a defect.", stats.purge_errors),
            (
                "invalidator_purge_refused",
                "Events refused by Redis (WRONGTYPE).",
                stats.purge_refused,
            ),
            (
                "invalidator_dead_letter_retries",
                "Dead-letter send retries after an outage.",
                stats.dead_letter_retries,
            ),
            (
                "invalidator_dead_letter_errors",
                "Dead-letter send retries after a defect (authorization, an unknown topic).",
                stats.dead_letter_errors,
            ),
            (
                "invalidator_commit_failures",
                "Offset commits that failed.",
                self._loop.committer.failures,
            ),
        ):
            counter = CounterMetricFamily(name, text, labels=names)
            counter.add_metric(values, value)
            yield counter
        purged = CounterMetricFamily(
            "invalidator_namespaces_purged",
            "Namespaces purged, per target and strategy.",
            labels=[*names, "target", "strategy"],
        )
        for target in self._targets:
            for strategy, count in sorted(stats.purged_by_strategy.items()):
                purged.add_metric([*values, target, strategy], count)
        yield purged
        dead = CounterMetricFamily(
            "invalidator_dead_lettered",
            "Records dead-lettered, per reason.",
            labels=[*names, "reason"],
        )
        for reason, count in sorted(stats.dead_lettered_by_reason.items()):
            dead.add_metric([*values, reason], count)
        yield dead
        paused = GaugeMetricFamily(
            "invalidator_paused",
            "1 while the partitions are paused (a purge failing).",
            labels=names,
        )
        paused.add_metric(values, 1.0 if self._loop.paused else 0.0)
        yield paused
        partition_labels = [*names, "topic", "partition"]
        lag_records = GaugeMetricFamily(
            "invalidator_lag_records",
            "Records between the log end and the last purged one.",
            labels=partition_labels,
        )
        lag_seconds = GaugeMetricFamily(
            "invalidator_lag_seconds",
            "Seconds since the last purged record was published (0 when caught up).",
            labels=partition_labels,
        )
        for tp, (records, seconds) in sorted(self._lag.items()):
            lag_records.add_metric([*values, tp.topic, str(tp.partition)], records)
            lag_seconds.add_metric([*values, tp.topic, str(tp.partition)], seconds)
        yield lag_records
        yield lag_seconds
