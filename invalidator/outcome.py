"""What a batch's purge produced: one record per batch, handed to the loop's listeners.

The loop builds a `BatchOutcome` once a batch is purged on every target and its rejected records
are on the dead-letter topic; the stats, the metrics' histograms and the trace spans read it
(`BatchListener`). They are handed to the loop when it is built, and nothing is attached to it
afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import TopicPartition

from contracts.decoding import RejectReason
from contracts.events import Event
from invalidator.planner import NamespaceKeys

Rejection = tuple[Any, RejectReason, str]
"""(record, reason, detail): an aiokafka ConsumerRecord, why it goes to the dead-letter topic,
and what was wrong, in words."""


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """A batch purged on every target of the region, its rejected records dead-lettered."""

    records: Sequence[Any]
    """Every record of the batch (aiokafka ConsumerRecords), in fetch order."""
    events: Sequence[tuple[Any, Event]]
    """(record, event) of every record that decoded."""
    purged: NamespaceKeys
    """Each namespace declaration with its keys purged (coalesced across the batch)."""
    namespaces_purged: int
    """How many concrete namespaces were purged."""
    rejected: Sequence[Rejection]
    """Every record sent to the dead-letter topic, with why."""
    offsets: Mapping[TopicPartition, int]
    """Partition -> the offset after the batch's last record there (what may be committed)."""
    newest_ms: Mapping[TopicPartition, int]
    """Partition -> the timestamp of the batch's last record there."""
    oldest_ms: float
    """The timestamp of the batch's oldest record (when it was published)."""
    remote_oldest_ms: Mapping[str, float]
    """Region -> the timestamp of the batch's oldest record mirrored from there (MirrorMaker
    keeps the source's timestamp)."""
    started_ns: int
    """When the successful purge attempt started (time.time_ns())."""
    duration_s: float
    """How long the successful purge attempt took."""
    purged_ms: float
    """When the batch was purged everywhere (epoch milliseconds)."""

    @property
    def oldest_age_s(self) -> float:
        """How long the batch's oldest record waited, from publish to purged everywhere."""
        return (self.purged_ms - self.oldest_ms) / 1000

    def remote_age_s(self) -> dict[str, float]:
        """For each region the batch holds mirrored records of: how long the oldest of them
        waited, from its publish there to purged here."""
        return {
            region: (self.purged_ms - oldest) / 1000
            for region, oldest in self.remote_oldest_ms.items()
        }


class BatchListener(Protocol):
    """Told of every batch purged everywhere (the stats, the metrics, the trace spans)."""

    def batch_purged(self, outcome: BatchOutcome) -> None:
        """outcome: what the batch's purge produced. Called on the loop's task: keep it short,
        and never raise (an error would stop the loop)."""
