"""The watchdog's summary per region (the one-shot `--json` report): the nines within each
threshold, the lag's p50 and p99, and every purge not seen."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from contracts.percentiles import percentile
from invalidator.watchdog.results import EventResult
from invalidator.watchdog.verdicts import Outcome

WITHIN_S = (0.01, 0.1, 1.0, 10.0)
"""The thresholds of the nines: the share of judged events purged within each."""


def threshold_name(seconds: float) -> str:
    """`10ms`, `100ms`, `1s`, `10s`: a threshold as the report and the metrics label it."""
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


@dataclass
class _Region:
    events: Counter[str] = field(default_factory=Counter)
    purges: Counter[str] = field(default_factory=Counter)
    lags_ms: list[float] = field(default_factory=list)
    not_seen: list[dict[str, str]] = field(default_factory=list)
    late: list[dict[str, Any]] = field(default_factory=list)


class WatchReport:
    """A `WatchListener` that keeps what a one-shot run reports (every lag of the run: for a
    window, not for a process that runs for weeks; that one has the metrics)."""

    def __init__(self) -> None:
        """An empty report."""
        self.records = 0
        self.sampled = 0
        self.skipped: Counter[str] = Counter()
        self._regions: dict[str, _Region] = {}

    def record_read(self, *, sampled: bool) -> None:
        """Count a record read."""
        self.records += 1
        self.sampled += sampled

    def record_skipped(self, reason: str) -> None:
        """Count a skipped record by reason."""
        self.records += 1
        self.skipped[reason] += 1

    def event_checked(self, result: EventResult) -> None:
        """Add a sampled event's outcome in one region."""
        region = self._regions.setdefault(result.region, _Region())
        outcome = result.judgement.outcome
        region.events[outcome.value] += 1
        if result.judgement.lag_ms is not None:
            region.lags_ms.append(result.judgement.lag_ms)
        for purge in result.purges:
            region.purges[purge.judgement.outcome.value] += 1
            described = {
                "event_id": result.event_id,
                "event_type": result.event_type,
                "namespace": purge.namespace,
                "key": purge.key,
                "region": result.region,
                "target": purge.target,
            }
            if purge.judgement.outcome is Outcome.MISSING:
                region.not_seen.append(described)
            elif purge.judgement.outcome is Outcome.LATE:
                region.late.append({**described, "lag_ms": round(purge.judgement.lag_ms or 0, 3)})

    def missing(self) -> int:
        """How many purges were not seen, every region."""
        return sum(region.purges[Outcome.MISSING.value] for region in self._regions.values())

    def unknown(self) -> int:
        """How many purges could not be looked at (a region unreachable), every region."""
        return sum(region.purges[Outcome.UNKNOWN.value] for region in self._regions.values())

    def regions(self) -> dict[str, dict[str, Any]]:
        """Per region: events and purges by outcome, the share of judged events (seen, late
        or missing) purged within each threshold (None when none was judged), the lag's p50
        and p99 in ms, and the purges not seen and seen late."""
        summary: dict[str, dict[str, Any]] = {}
        for name, region in sorted(self._regions.items()):
            judged = sum(region.events[o.value] for o in Outcome if o.judged)
            summary[name] = {
                "events": {o.value: region.events[o.value] for o in Outcome},
                "purges": {o.value: region.purges[o.value] for o in Outcome},
                "seen_within": {
                    threshold_name(s): (
                        None
                        if not judged
                        else sum(1 for lag in region.lags_ms if lag <= s * 1000) / judged
                    )
                    for s in WITHIN_S
                },
                "lag_ms": {
                    "p50": round(percentile(region.lags_ms, 0.50), 3),
                    "p99": round(percentile(region.lags_ms, 0.99), 3),
                },
                "not_seen": region.not_seen,
                "late": region.late,
            }
        return summary
