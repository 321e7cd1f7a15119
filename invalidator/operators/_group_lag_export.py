"""Each region group's lag as the broker holds it, for Prometheus: `invalidator offsets export`.

The lag comes from the group's committed offsets against the log ends, so it needs no
invalidator to be alive: it goes on growing while a region's invalidators are stopped, hung or
crash-looping. The broker is read every few seconds in the background; a scrape serves the last
read and never waits on Kafka.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from contracts.connections import KafkaConnection
from invalidator.operators._offsets import group_lag, record_timestamps

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GroupPartitionLag:
    """One group's lag on one partition, as last read from the broker."""

    region: str
    group: str
    partition: TopicPartition
    records: int
    """Log end less the committed offset."""
    seconds: float | None
    """Seconds since the last committed record was published (since the first record waiting
    was, where the group committed offset 0); 0 when caught up; None when no record is left to
    tell (retention)."""


class GroupLagReader:
    """Reads the lag of each region's group on `topics`, remembering the timestamp of each
    committed record so that a record is read once, not at every refresh."""

    def __init__(
        self, kafka: KafkaConnection, *, groups: Mapping[str, str], topics: Sequence[str]
    ) -> None:
        """kafka: the cluster. groups: region -> its group id. topics: the topics they read."""
        self._kafka = kafka
        self._groups = dict(groups)
        self._topics = list(topics)
        self._stamps: dict[tuple[TopicPartition, int], int | None] = {}

    async def read(self) -> tuple[GroupPartitionLag, ...]:
        """Every group's lag on every partition it committed on (a partition it never committed
        on has no lag yet: where it would start is the INVALIDATOR_START_FROM setting's)."""
        lags: list[GroupPartitionLag] = []
        known = dict(self._stamps)
        kept: dict[tuple[TopicPartition, int], int | None] = {}
        for region, group in sorted(self._groups.items()):
            positions = await group_lag(self._kafka, group, self._topics)
            # The last record purged; where none was (offset 0), the first one waiting.
            last_purged = {
                tp: max(0, p.committed - 1)
                for tp, p in positions.items()
                if p.committed is not None and p.lag > 0
            }
            unread = {tp: o for tp, o in last_purged.items() if (tp, o) not in known}
            if unread:
                for tp, stamp in (await record_timestamps(self._kafka, unread)).items():
                    known[(tp, unread[tp])] = stamp
            now_ms = time.time() * 1000
            for tp, position in sorted(positions.items()):
                if position.committed is None:
                    continue
                seconds: float | None = 0.0
                if tp in last_purged:
                    key = (tp, last_purged[tp])
                    stamp = kept[key] = known[key]
                    seconds = None if stamp is None else max(0.0, (now_ms - stamp) / 1000)
                lags.append(GroupPartitionLag(region, group, tp, position.lag, seconds))
        self._stamps = kept
        return tuple(lags)


class GroupLagCollector(Collector):
    """Serves the last lag read (`update`) as `invalidator_group_lag_records` and
    `invalidator_group_lag_seconds`, labelled region, group, topic and partition."""

    def __init__(self) -> None:
        """Nothing to serve until the first `update`."""
        self._lags: tuple[GroupPartitionLag, ...] = ()
        self._read_at: float | None = None

    def update(self, lags: tuple[GroupPartitionLag, ...]) -> None:
        """Serve `lags` from now on (a scrape in another thread sees the old or the new)."""
        self._lags, self._read_at = lags, time.time()

    def collect(self) -> Iterator[Metric]:
        """The gauges of the last read."""
        labels = ["region", "group", "topic", "partition"]
        records = GaugeMetricFamily(
            "invalidator_group_lag_records",
            "Records between the log end and the group's committed offset, read from the broker.",
            labels=labels,
        )
        seconds = GaugeMetricFamily(
            "invalidator_group_lag_seconds",
            "Seconds since the group's last committed record was published (0 when caught up), "
            "read from the broker.",
            labels=labels,
        )
        for lag in self._lags:
            values = [lag.region, lag.group, lag.partition.topic, str(lag.partition.partition)]
            records.add_metric(values, lag.records)
            if lag.seconds is not None:
                seconds.add_metric(values, lag.seconds)
        yield records
        yield seconds
        read_at = GaugeMetricFamily(
            "invalidator_group_lag_read_timestamp_seconds",
            "When the group lag was last read from the broker (Unix time; absent before the "
            "first read).",
        )
        if self._read_at is not None:
            read_at.add_metric([], self._read_at)
        yield read_at


async def refresh_group_lag(reader: GroupLagReader, collector: GroupLagCollector) -> None:
    """Read the lag once and serve it; on a broker failure keep serving the last read (its
    timestamp gauge shows its age) and log why."""
    try:
        collector.update(await reader.read())
    except (KafkaError, TimeoutError, OSError) as error:
        log.warning("cannot read the group lag from the broker (serving the last read): %r", error)
