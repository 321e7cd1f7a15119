"""The one percentile every report of the project uses (invalidator and relay stats, demo,
benchmarks)."""

from __future__ import annotations

from collections.abc import Iterable


def percentile(samples: Iterable[float], fraction: float) -> float:
    """The nearest-rank percentile of `samples` (0.0 when empty); fraction in [0, 1]."""
    ordered = sorted(samples)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]
