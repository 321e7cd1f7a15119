"""Rewind planning, pure: parsing times and durations, and the per-partition plan with clamping."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiokafka import TopicPartition

from contracts.errors import OperatorInputError

DATETIME_FORMS = "ISO 8601 with a zone, e.g. 2026-11-27T13:45:00Z or 2026-11-27T14:45:00+01:00"
DURATION_FORMS = "ISO 8601 (PT15M, PT1H30M, P1D) or short (90s, 15m, 2h, 1h30m, 1d)"

_SHORT_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_ISO_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


def parse_datetime(text: str, *, option: str) -> datetime:
    """An aware datetime from ISO 8601 text; a time without a zone is refused (ambiguous)."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise OperatorInputError(
            f"{option} {text!r} is not a time; write {DATETIME_FORMS}"
        ) from None
    if parsed.tzinfo is None:
        raise OperatorInputError(f"{option} {text!r} has no zone; write {DATETIME_FORMS}")
    return parsed


def parse_duration(text: str, *, option: str) -> timedelta:
    """A positive duration from ISO 8601 (`PT15M`) or short (`15m`, `1h30m`) text."""
    compact = text.strip()
    match = _ISO_DURATION.fullmatch(compact.upper()) if compact[:1] in "Pp" else None
    if match is None:
        match = _SHORT_DURATION.fullmatch(compact.lower())
    if match is None or not any(match.groups()):
        raise OperatorInputError(f"{option} {text!r} is not a duration; write {DURATION_FORMS}")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def parse_when(text: str, *, option: str, now: datetime | None = None) -> datetime:
    """A point in time: an ISO 8601 datetime, or a duration meaning that long before now."""
    if text[:1].isdigit() and ("-" in text or ":" in text):
        return parse_datetime(text, option=option)
    try:
        ago = parse_duration(text, option=option)
    except OperatorInputError:
        raise OperatorInputError(
            f"{option} {text!r} is neither a time ({DATETIME_FORMS}) nor a duration ago "
            f"({DURATION_FORMS})"
        ) from None
    return (now or datetime.now(UTC)) - ago


def parse_partitions(text: str | None) -> set[int] | None:
    """`0,1,5` as a set of partition numbers (None: every partition)."""
    if text is None:
        return None
    try:
        numbers = {int(part) for part in text.split(",") if part.strip()}
    except ValueError:
        raise OperatorInputError(f"--partitions {text!r}: write numbers like 0,1,5") from None
    if not numbers or min(numbers) < 0:
        raise OperatorInputError(f"--partitions {text!r}: write numbers like 0,1,5")
    return numbers


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
