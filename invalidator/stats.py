"""Counters and latency samples of one invalidator, for its periodic log line and for tests."""

from __future__ import annotations

import json
import os
from collections import Counter, deque
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import TopicPartition

from contracts.decoding import RejectReason
from contracts.percentiles import percentile
from invalidator.outcome import BatchOutcome


@dataclass
class InvalidatorStats:
    """What one invalidator process did since it started.

    The loop counts its failed attempts here; every batch purged everywhere reaches it as a
    `BatchOutcome` (it is the loop's first listener).
    """

    batches: int = 0
    events: int = 0
    namespaces_purged: int = 0
    dead_lettered: int = 0
    purge_retries: int = 0
    """Retries of a purge that failed for an outage (Redis unreachable, loading, failing over)."""
    purge_errors: int = 0
    """Retries of a purge that failed for anything else (permissions, a script error, a bug)."""
    purge_refused: int = 0
    """Events dead-lettered because Redis refused a namespace they purge (WRONGTYPE)."""
    dead_letter_retries: int = 0
    """Retries of a dead-letter send that failed for an outage (the brokers unreachable)."""
    dead_letter_errors: int = 0
    """Retries of a dead-letter send that failed for a defect (authorization, an unknown
    topic, a bug)."""
    commit_failures: int = 0
    lag_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    """Record timestamp (when it was published) -> purged on every target of the region, ms;
    the latest samples."""
    purged_by_strategy: Counter[str] = field(default_factory=Counter)
    """Namespaces purged on every target, per purge strategy."""
    dead_lettered_by_reason: Counter[RejectReason] = field(default_factory=Counter)
    purged_to: dict[TopicPartition, int] = field(default_factory=dict)
    """Partition -> the offset after its last record purged everywhere."""
    purged_at_ms: dict[TopicPartition, float] = field(default_factory=dict)
    """Partition -> the timestamp of its last record purged everywhere (when it was assigned,
    until a record is purged there)."""

    def starting(self, positions: dict[TopicPartition, int], now_ms: float) -> None:
        """Partitions just assigned, at these positions (nothing after them is purged yet)."""
        self.purged_to.update(positions)
        for tp in positions:
            self.purged_at_ms[tp] = now_ms

    def forget(self, partitions: Collection[TopicPartition]) -> None:
        """Partitions revoked: their positions are another member's now."""
        for tp in partitions:
            self.purged_to.pop(tp, None)
            self.purged_at_ms.pop(tp, None)

    def batch_purged(self, outcome: BatchOutcome) -> None:
        """Count a batch purged everywhere (a `BatchListener`): per namespace and per rejected
        record; per record only the lag sample."""
        purged_ms = outcome.purged_ms
        self.lag_ms.extend(purged_ms - record.timestamp for record in outcome.records)
        self.batches += 1
        self.events += len(outcome.records)
        self.namespaces_purged += outcome.namespaces_purged
        self.dead_lettered += len(outcome.rejected)
        for namespace, keys in outcome.purged:
            self.purged_by_strategy[namespace.strategy.value] += len(keys)
        for _, reason, _ in outcome.rejected:
            self.dead_lettered_by_reason[reason] += 1
        self.purged_to.update(outcome.offsets)
        self.purged_at_ms.update(outcome.newest_ms)

    def summary(self) -> str:
        """One log line."""
        return " ".join(
            f"{name}={value:.1f}" if isinstance(value, float) else f"{name}={value}"
            for name, value in self.as_dict().items()
        )

    def as_dict(self) -> dict[str, float]:
        """The counters and lag percentiles, for the stats file."""
        samples = list(self.lag_ms)
        return {
            "batches": self.batches,
            "events": self.events,
            "namespaces_purged": self.namespaces_purged,
            "dead_lettered": self.dead_lettered,
            "purge_retries": self.purge_retries,
            "purge_errors": self.purge_errors,
            "purge_refused": self.purge_refused,
            "dead_letter_retries": self.dead_letter_retries,
            "dead_letter_errors": self.dead_letter_errors,
            "commit_failures": self.commit_failures,
            "lag_ms_p50": percentile(samples, 0.5),
            "lag_ms_p99": percentile(samples, 0.99),
        }

    def write(self, path: Path) -> None:
        """Replace `path` atomically with the stats as JSON (readers never see half a file)."""
        partial = path.with_suffix(path.suffix + ".partial")
        partial.write_text(json.dumps(self.as_dict()))
        os.replace(partial, path)
