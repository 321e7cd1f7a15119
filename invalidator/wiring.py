"""What one region's invalidator runs on, and the one place the production parts are built.

`Invalidator.run_on` runs on the `InvalidatorParts` it is handed: a group consumer, the region's
purge targets, a dead-letter producer and the observers. `production_parts` builds the real
ones from the settings: the aiokafka consumer of the group `invalidator.<region>`, the region's
Redis targets, the dead-letter topic's producer, the batch listeners (the OpenTelemetry batch
spans when installed, the metrics' histograms) and the Prometheus metrics and probes (when
`metrics_port` is set). Tests hand over fakes, or real parts with one of them wrapped.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from prometheus_client import CollectorRegistry

from contracts.kafka_clients import kafka_consumer
from invalidator.deadletter import DeadLetters
from invalidator.endpoints import Endpoints
from invalidator.log_ends import LogEndWatch
from invalidator.loop import DeadLetterSink, InvalidationLoop, PurgeTargets, RecordSource
from invalidator.metrics import BatchHistograms, InvalidatorMetrics, LogEnds
from invalidator.outcome import BatchListener
from invalidator.settings import InvalidatorSettings
from invalidator.start_position import reset_before_start
from invalidator.stats import InvalidatorStats
from invalidator.targets import RegionTargets


class GroupConsumer(RecordSource, Protocol):
    """The group's consumer: what the loop needs, plus membership and its lifecycle
    (aiokafka's `AIOKafkaConsumer` has it; `start_uncommitted` also seeks and commits)."""

    def subscribe(self, *, topics: Sequence[str], listener: ConsumerRebalanceListener) -> None:
        """Join the group for `topics` once started; `listener` hears of every rebalance."""

    async def start(self) -> None:
        """Connect and join the group."""

    async def stop(self) -> None:
        """Leave the group and disconnect."""

    async def position(self, partition: TopicPartition) -> int:
        """The offset of the next record fetched from `partition`."""

    async def topics(self) -> set[str]:
        """Every topic of the cluster (a metadata request that creates none)."""


class Targets(PurgeTargets, Protocol):
    """The region's purge targets and their clients' end (`RegionTargets` has it)."""

    async def close(self) -> None:
        """Close every client."""


class DeadLetterProducer(DeadLetterSink, Protocol):
    """The dead-letter topic's producer and its lifecycle (`DeadLetters` has it)."""

    async def start(self) -> None:
        """Connect."""

    async def stop(self) -> None:
        """Flush and disconnect."""


class WatchedLogEnds(LogEnds, Protocol):
    """Log ends read from the broker while started (`LogEndWatch` is it)."""

    async def start(self) -> None:
        """Connect and start reading."""

    async def stop(self) -> None:
        """Stop reading and disconnect."""


class MetricsService(Protocol):
    """The metrics and probes, served while the loop runs (`MetricsEndpoints` is it): they
    read the loop, so they start once it exists."""

    async def start(self, loop: InvalidationLoop, stats: InvalidatorStats) -> tuple[str, int]:
        """Start serving what `loop` and `stats` say; the address it listens on."""

    async def stop(self) -> None:
        """Stop serving."""


@dataclass(frozen=True)
class InvalidatorParts:
    """What one region's invalidator runs on: built, not started (`Invalidator.run_on` starts
    them in order and stops every one that was built, whatever fails)."""

    consumer: GroupConsumer
    targets: Targets
    dead_letters: DeadLetterProducer
    listeners: tuple[BatchListener, ...] = ()
    """Told of every batch purged everywhere, besides the stats (the metrics' histograms, the
    OpenTelemetry spans); handed to the loop when it is built."""
    metrics: MetricsService | None = None
    """The metrics and probes endpoints, if served."""


def production_parts(settings: InvalidatorSettings, *, region: str) -> InvalidatorParts:
    """The real parts of `region`'s invalidator, from `settings`.

    Call it inside the running event loop the invalidator will run on: aiokafka's clients bind
    to it when they are built, and warn at exit if they were never stopped.
    """
    group_id = settings.group_id(region)
    client_id = f"{group_id}.{socket.gethostname()}.{os.getpid()}"
    consumer = kafka_consumer(
        settings.kafka,
        group_id=group_id,
        client_id=client_id,
        # Where the fetcher starts on a partition never committed, until the start position
        # is decided on assignment (start_position.py): a fetch in between may only return
        # records at or after the position that will be chosen, never before it.
        auto_offset_reset=reset_before_start(settings.start_from),
        isolation_level="read_committed",
        fetch_max_wait_ms=100,
        # A member learns of a rebalance at its next heartbeat: aiokafka's 3 s default made
        # every join, leave and scale-out take over 3 s; 1 s costs a request a second.
        heartbeat_interval_ms=1000,
    )
    targets = RegionTargets(region, settings.targets(region))
    dead_letters = DeadLetters(
        settings.kafka,
        topic=settings.dead_letter_topic,
        group_id=group_id,
        max_bytes=settings.dead_letter_max_bytes,
        mirrored_from=settings.mirrored_from,
    )
    metrics = None
    if settings.metrics_port is not None:
        metrics = MetricsEndpoints(
            region=region,
            group=group_id,
            consumer=consumer,
            log_ends=LogEndWatch(
                settings.kafka, partitions=consumer.assignment, client_id=f"{client_id}.log-ends"
            ),
            targets=targets.names(),
            address=(settings.metrics_host, settings.metrics_port),
            max_paused_s=settings.ready_max_paused_s,
            max_idle_s=settings.alive_max_idle_s,
        )
    spans = batch_spans_if_installed(region=region, group=group_id)
    listeners = tuple(
        listener
        for listener in (metrics.histograms if metrics else None, spans)
        if listener is not None
    )
    return InvalidatorParts(consumer, targets, dead_letters, listeners=listeners, metrics=metrics)


class MetricsEndpoints:
    """/metrics, /healthz and /readyz of one region's invalidator.

    Built before the loop: its histograms are one of the loop's listeners (`histograms`).
    Started once the loop exists: the counters and gauges read the loop's state at scrape time.
    """

    def __init__(
        self,
        *,
        region: str,
        group: str,
        consumer: AIOKafkaConsumer,
        log_ends: WatchedLogEnds,
        targets: set[str],
        address: tuple[str, int],
        max_paused_s: float,
        max_idle_s: float,
    ) -> None:
        """region, group: the metrics' labels.
        consumer: where the assignment (and the log end its fetches told) is read.
        log_ends: reads the assigned partitions' log ends from the broker while serving, so the
            lag stays true while the partitions are paused.
        targets: the region's target names.
        address: (host, port) to listen on (port 0: a free one).
        max_paused_s: /readyz fails once the partitions are paused this long.
        max_idle_s: /healthz fails once the loop has not iterated (or started) for this long.
        """
        self._region = region
        self._group = group
        self._consumer = consumer
        self._log_ends = log_ends
        self._targets = targets
        self._address = address
        self._max_paused_s = max_paused_s
        self._max_idle_s = max_idle_s
        self._endpoints: Endpoints | None = None
        self._registry = CollectorRegistry(auto_describe=True)
        self.histograms = BatchHistograms(region=region, group=group, registry=self._registry)
        """Fed each batch purged everywhere (a listener of the loop)."""

    async def start(self, loop: InvalidationLoop, stats: InvalidatorStats) -> tuple[str, int]:
        """Serve the metrics of `loop` and `stats` and the probes; the address bound."""
        consumer = self._consumer
        await self._log_ends.start()
        metrics = InvalidatorMetrics(
            region=self._region,
            group=self._group,
            stats=stats,
            loop=loop,
            targets=self._targets,
            consumer=consumer,
            log_ends=self._log_ends,
            registry=self._registry,
        )
        self._endpoints = Endpoints(
            metrics,
            loop,
            assigned=lambda: bool(consumer.assignment()),
            max_paused_s=self._max_paused_s,
            max_idle_s=self._max_idle_s,
        )
        return await self._endpoints.start(*self._address)

    async def stop(self) -> None:
        """Stop serving."""
        if self._endpoints is not None:
            await self._endpoints.stop()
        await self._log_ends.stop()


def batch_spans_if_installed(*, region: str, group: str) -> BatchListener | None:
    """The batch spans when OpenTelemetry is installed (the `otel` extra); None otherwise."""
    try:
        from invalidator.tracing import BatchSpans  # noqa: PLC0415
    except ImportError:
        return None
    return BatchSpans(region=region, group=group)
