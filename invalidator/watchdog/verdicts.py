"""What the watchdog concludes of a purge it looks for: the outcomes, and how looks are judged.

A purge of namespace N for an event published at time T is seen when `{N}:gen` holds a
generation token made after T (tokens carry the time they were made). Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from contracts.layout import generation_time_ns


class Outcome(enum.StrEnum):
    """What became of one purge the watchdog looked for (or of an event, all its purges)."""

    SEEN = "seen"
    LATE = "late"
    MISSING = "missing"
    UNKNOWN = "unknown"
    EXPIRED = "expired_not_judged"

    @property
    def description(self) -> str:
        """What the outcome means, in words."""
        return _DESCRIPTIONS[self]

    @property
    def judged(self) -> bool:
        """Whether the outcome says something of the purge (the nines count it)."""
        return self in (Outcome.SEEN, Outcome.LATE, Outcome.MISSING)


_DESCRIPTIONS = {
    Outcome.SEEN: "a generation token made after the event, within the deadline",
    Outcome.LATE: "a generation token made after the event, but later than the deadline "
    "(the purge happened: late, not lost)",
    Outcome.MISSING: "the generation token was still older than the event when the watchdog "
    "stopped looking (deadline and grace): the purge did not happen",
    Outcome.UNKNOWN: "the region's Redis could not be read: nothing is said of the purge",
    Outcome.EXPIRED: "the generation key was absent (expired by its TTL, evicted, never "
    "written) or held no token: the next read starts a fresh generation, nothing is judged",
}


class Look(enum.Enum):
    """What one read of `{N}:gen` found besides a token (`Reading`)."""

    ABSENT = "absent"
    UNREACHABLE = "unreachable"


Reading = bytes | Look
"""One read of `{N}:gen`: the token it held, or what stood in its place."""


@dataclass(frozen=True, slots=True)
class Judgement:
    """The outcome of one purge looked for, with its lag when it was seen."""

    outcome: Outcome
    lag_ms: float | None = None
    """From the event's publication to the token's time (SEEN, LATE)."""
    lag_bound: bool = False
    """The lag is an upper bound: no earlier read found an older token or an absent key, so the
    newer token found may be a later purge's, not the first one's."""


def judge(
    reading: Reading,
    *,
    event_ms: float,
    read_before: bool,
    deadline_ms: float,
    final: bool,
) -> Judgement | None:
    """Judge one look at a purge; None while it is still to be looked for again.

    reading: what `{N}:gen` held at this look.
    event_ms: the event's record timestamp (its publication), ms since the epoch.
    read_before: an earlier look read `{N}:gen` and found no newer token: a newer token now is
        the first purge's (give or take a look's interval), not possibly a later one's.
    deadline_ms: a purge whose token is later than this after the event is late.
    final: the deadline and the grace period are over: no later look.
    """
    made_ns = generation_time_ns(reading) if isinstance(reading, bytes) else None
    if made_ns is not None and made_ns / 1e6 >= event_ms:
        lag_ms = made_ns / 1e6 - event_ms
        if lag_ms <= deadline_ms or not read_before:
            # Without an earlier read the token may be a later purge's: late cannot be told.
            return Judgement(Outcome.SEEN, lag_ms, lag_bound=not read_before)
        return Judgement(Outcome.LATE, lag_ms)
    if not final:
        return None
    if reading is Look.UNREACHABLE:
        return Judgement(Outcome.UNKNOWN)
    if made_ns is None:
        return Judgement(Outcome.EXPIRED)
    return Judgement(Outcome.MISSING)


_SEVERITY = (Outcome.MISSING, Outcome.LATE, Outcome.SEEN, Outcome.UNKNOWN, Outcome.EXPIRED)


def event_judgement(purges: Sequence[Judgement]) -> Judgement:
    """An event's outcome in one region from its purges' (every namespace, every target): the
    worst judged one (missing, then late, then seen), its lag the longest seen; unknown when
    none was judged and one region's target could not be read; else expired, not judged.

    purges: at least one judgement (an event with no purge to look for has no outcome).
    """
    if not purges:
        raise ValueError("an event's outcome needs at least one purge's")
    outcome = next(o for o in _SEVERITY if any(p.outcome is o for p in purges))
    lags = [p.lag_ms for p in purges if p.lag_ms is not None]
    if outcome in (Outcome.SEEN, Outcome.LATE) and lags:
        return Judgement(
            outcome, max(lags), lag_bound=any(p.lag_bound for p in purges if p.lag_ms is not None)
        )
    return Judgement(outcome)
