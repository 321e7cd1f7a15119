"""Counters and latency samples of one invalidator, for its periodic log line and for tests."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


def percentile(samples: list[float], fraction: float) -> float:
    """The nearest-rank percentile of `samples` (0.0 when empty); fraction in [0, 1]."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


@dataclass
class InvalidatorStats:
    """What one invalidator process did since it started."""

    batches: int = 0
    events: int = 0
    namespaces_purged: int = 0
    dead_lettered: int = 0
    purge_retries: int = 0
    commit_failures: int = 0
    lag_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    """Event occurred_at -> purged on every target of the region, latest samples."""

    def summary(self) -> str:
        """One log line."""
        samples = list(self.lag_ms)
        return (
            f"batches={self.batches} events={self.events} "
            f"namespaces_purged={self.namespaces_purged} dead_lettered={self.dead_lettered} "
            f"purge_retries={self.purge_retries} commit_failures={self.commit_failures} "
            f"lag_ms_p50={percentile(samples, 0.5):.1f} lag_ms_p99={percentile(samples, 0.99):.1f}"
        )
