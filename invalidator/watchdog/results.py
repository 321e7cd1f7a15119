"""What the watchdog hands its listeners (metrics, the one-shot report): immutable records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from invalidator.watchdog.verdicts import Judgement

NOTHING_TO_CHECK = "nothing_to_check"
"""The reason a sampled event is skipped when none of its namespaces has a generation token to
look at (it purges nothing, or only `exact` and `scan` namespaces); the other reasons are the
decoder's (`contracts.decoding.RejectReason`)."""


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """One purge looked for: an event's namespace on one Redis target of one region."""

    namespace: str
    """The namespace's declared name, e.g. company_orders."""
    key: str
    """The concrete namespace, e.g. company:42:orders."""
    target: str
    """The Redis target's name (never its URL)."""
    judgement: Judgement


@dataclass(frozen=True, slots=True)
class EventResult:
    """A sampled event's outcome in one region, with each of its purges there."""

    event_id: str
    event_type: str
    event_ms: int
    """The record's timestamp: its publication, what the lag is measured from."""
    region: str
    judgement: Judgement
    """The event's outcome: its worst purge's (`verdicts.event_judgement`)."""
    purges: tuple[PurgeResult, ...]


class WatchListener(Protocol):
    """Told of what the watchdog reads and concludes (wired where the watchdog is built)."""

    def record_read(self, *, sampled: bool) -> None:
        """A record was read (decoded when `sampled`: its purges will be looked for; not
        decoded when its event-id header is not sampled). Each record is told of once: here or
        in `record_skipped`."""

    def record_skipped(self, reason: str) -> None:
        """A record was counted and skipped: undecodable (the decoder's reason; a record whose
        event-id header is not sampled is not decoded), or sampled but unplannable, or
        NOTHING_TO_CHECK."""

    def event_checked(self, result: EventResult) -> None:
        """A sampled event's purges in one region were all judged."""
