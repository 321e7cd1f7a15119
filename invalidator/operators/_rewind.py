"""Rewind planning, pure: the per-partition plan, clamped to the log and saying so."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import TopicPartition


@dataclass(frozen=True, slots=True)
class RewindRow:
    """One partition of a rewind plan."""

    partition: TopicPartition
    current: int | None
    new: int
    note: str = ""
    starts_at: int | None = None
    """Where the group would start without a commit here (INVALIDATOR_START_FROM)."""

    @property
    def replayed(self) -> int:
        """Events the group will read again (negative: events it will skip)."""
        if self.current is not None:
            return self.current - self.new
        return (self.starts_at if self.starts_at is not None else self.new) - self.new


def plan_rewind(
    committed: dict[TopicPartition, int],
    bounds: dict[TopicPartition, tuple[int, int]],
    desired: dict[TopicPartition, int],
    *,
    uncommitted_starts: dict[TopicPartition, int] | None = None,
) -> list[RewindRow]:
    """The plan: each partition's new offset, clamped to the log and saying so.

    committed: the group's current offsets (absent: never committed).
    bounds: (log start, log end) per partition.
    desired: the offset asked for, per partition to rewind.
    uncommitted_starts: where the group would start on partitions it never committed (from
        INVALIDATOR_START_FROM); moving such a partition forward skips what lies between.
    """
    rows = []
    for tp in sorted(desired):
        start, end = bounds[tp]
        wanted = desired[tp]
        note = ""
        if wanted < start:
            note = f"asked {wanted}, clamped to log start {start}"
            wanted = start
        elif wanted > end:
            note = f"asked {wanted}, clamped to log end {end}"
            wanted = end
        current = committed.get(tp)
        starts_at = None
        if current is None and uncommitted_starts is not None and tp in uncommitted_starts:
            starts_at = uncommitted_starts[tp]
            never = f"never committed (would start at {starts_at})"
            note = f"{note}; {never}" if note else never
        row = RewindRow(tp, current, wanted, note, starts_at)
        if row.replayed < 0:
            skipped = f"skips {-row.replayed} events not purged yet"
            row = RewindRow(
                tp, current, wanted, f"{note}; {skipped}" if note else skipped, starts_at
            )
        rows.append(row)
    return rows
