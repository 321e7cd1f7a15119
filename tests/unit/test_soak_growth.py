"""The soak's RSS growth: a warm-up step is not growth, a leak is."""

from __future__ import annotations

from bench.soak import rss_growth_mb


def test_a_warm_up_step_that_then_stays_flat_is_no_growth() -> None:
    points = [(t * 5.0, 60.0 if t < 3 else 86.0) for t in range(40)]
    assert rss_growth_mb(points) == 0.0


def test_a_steady_climb_is_growth() -> None:
    points = [(t * 5.0, 60.0 + t) for t in range(40)]
    assert rss_growth_mb(points) == 20.0
    assert rss_growth_mb(points[:5]) is None
