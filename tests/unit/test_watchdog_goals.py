"""The watchdog figure: its summary of the alternating drains and its goal row."""

from __future__ import annotations

from bench.goals import goal_rows
from bench.progress import Drained
from bench.watchdog import WatchedDrain, summary


def _drain(variant: str, events_per_s: float, cpu_s: float | None = None) -> WatchedDrain:
    drained = Drained(events=1_000, seconds=1_000 / events_per_s, events_timed=1_000,
                      startup_s=1.0, peak_rss_mb=None)  # fmt: skip
    if variant == "without":
        return WatchedDrain(variant, drained, lost_purges=0)
    outcomes = {"seen": 100, "late": 0}
    return WatchedDrain(variant, drained, 0, cpu_s, sampled=100, outcomes=outcomes)


def test_the_ratio_is_of_the_medians_and_the_cpu_is_per_sampled_event() -> None:
    results = summary(
        [
            _drain("without", 10_000),
            _drain("with", 9_000, cpu_s=0.2),
            _drain("with", 9_800, cpu_s=0.1),
            _drain("without", 10_400),
            _drain("without", 9_600),
            _drain("with", 9_700, cpu_s=None),
        ]
    )
    assert results["drain_events_per_s"]["without"] == {
        "runs": [10_000.0, 10_400.0, 9_600.0],
        "median": 10_000.0,
    }
    assert results["drain_events_per_s"]["with"]["median"] == 9_700.0
    assert results["ratio_with_to_without"] == 0.97
    assert results["lost_purges"] == 0
    # Only the drains whose CPU was read count: 0.3 s over 200 sampled events.
    assert results["watchdog"]["cpu_ms_per_sampled_event"] == 1.5
    assert results["watchdog"]["outcomes"] == {"seen": 300, "late": 0}


def test_the_goal_row_is_met_when_the_drain_loses_at_most_5_percent() -> None:
    def row(ratio: float) -> tuple[str, bool | None]:
        document = {
            "parameters": {"sample_every": 10},
            "results": {
                "drain_events_per_s": {"with": {"median": 9_000}, "without": {"median": 10_000}},
                "ratio_with_to_without": ratio,
                "watchdog": {"cpu_ms_per_sampled_event": 0.25},
            },
        }
        (found,) = [r for r in goal_rows({"watchdog": document}) if "watchdog" in r.figure]
        return found.measured, found.met

    assert row(0.95) == (
        "9,000 vs 10,000 events/s; watchdog 0.250 ms CPU per sampled event",
        True,
    )
    assert row(0.94)[1] is False
    (unmeasured,) = [r for r in goal_rows({}) if "watchdog" in r.figure]
    assert (unmeasured.figure, unmeasured.met) == ("drain with a watchdog at 1 in 10", None)
