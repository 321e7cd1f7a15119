"""Prometheus metrics of the watchdog, in a registry of its own, fed by the records it hands
its listeners (a `WatchListener`).

The nines are read from the lag histogram and the events counter: the share of judged events
purged within T is `invalidator_watchdog_purge_lag_seconds_bucket{le="T"}` over
`invalidator_watchdog_events_total{outcome=~"seen|late|missing"}` (docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from invalidator.watchdog.results import EventResult
from invalidator.watchdog.verdicts import Outcome

_LAG_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Every threshold of the nines (`report.WITHIN_S`) is a bucket bound, so they read from it."""


class WatchMetrics:
    """The watchdog's counters, its lag histogram and its pending gauge."""

    def __init__(
        self,
        *,
        targets: Mapping[str, Sequence[str]],
        pending: Callable[[], int],
        registry: CollectorRegistry,
    ) -> None:
        """targets: each region's target names: their counts of every outcome start at 0, so
            that an alert on the first purge not seen fires (`increase` of a new series is 0).
        pending: how many sampled events still have a purge to look for (read at scrape).
        registry: where the metrics are registered, and what `exposition` exposes.
        """
        self.registry = registry
        self._records = Counter(
            "invalidator_watchdog_records",
            "Records read by the watchdog, by whether they were sampled (those sampled were "
            "decoded).",
            ["sampled"],
            registry=registry,
        )
        # Every record is counted: the children are looked up once, not per record.
        self._sampled = self._records.labels(sampled="true")
        self._not_sampled = self._records.labels(sampled="false")
        self._skipped = Counter(
            "invalidator_watchdog_records_skipped",
            "Records counted and skipped: undecodable, unplannable, or nothing to check.",
            ["reason"],
            registry=registry,
        )
        self._events = Counter(
            "invalidator_watchdog_events",
            "Sampled events judged, per region and outcome (their worst purge's).",
            ["region", "outcome"],
            registry=registry,
        )
        self._purges = Counter(
            "invalidator_watchdog_purges",
            "Purges looked for (an event's namespace on one target), per region, target and "
            "outcome; outcome=missing: purges not seen by the deadline and its grace.",
            ["region", "target", "outcome"],
            registry=registry,
        )
        self._lag = Histogram(
            "invalidator_watchdog_purge_lag_seconds",
            "Publication of a sampled event to its purge seen in a region (its slowest "
            "namespace's generation token), of events seen or late.",
            ["region"],
            buckets=_LAG_BUCKETS_S,
            registry=registry,
        )
        for region, names in targets.items():
            for outcome in Outcome:
                self._events.labels(region=region, outcome=outcome.value)
                for target in names:
                    self._purges.labels(region=region, target=target, outcome=outcome.value)
        Gauge(
            "invalidator_watchdog_events_pending",
            "Sampled events with a purge still looked for.",
            registry=registry,
        ).set_function(pending)

    def record_read(self, *, sampled: bool) -> None:
        """Count a record read."""
        (self._sampled if sampled else self._not_sampled).inc()

    def record_skipped(self, reason: str) -> None:
        """Count a skipped record."""
        self._skipped.labels(reason=reason).inc()

    def event_checked(self, result: EventResult) -> None:
        """Count a sampled event's outcome and its purges', observe its lag."""
        self._events.labels(region=result.region, outcome=result.judgement.outcome.value).inc()
        for purge in result.purges:
            self._purges.labels(
                region=result.region, target=purge.target, outcome=purge.judgement.outcome.value
            ).inc()
        if result.judgement.outcome in (Outcome.SEEN, Outcome.LATE):
            assert result.judgement.lag_ms is not None  # a seen purge has its token's time
            self._lag.labels(region=result.region).observe(max(0.0, result.judgement.lag_ms) / 1000)

    def exposition(self) -> bytes:
        """The text exposition format of the registry."""
        return generate_latest(self.registry)
