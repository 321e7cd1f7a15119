"""The read-path figure's goal rows: a `fetch` hit against the bare `MGET` beside it."""

from __future__ import annotations

from bench.goals import GoalRow, goal_rows, goal_table


def _hit(fetch_per_s: float, mget_per_s: float, throughput: float, p50: float) -> dict[str, object]:
    return {
        "fetch": {"calls_per_s": fetch_per_s, "p50_ms": 0.2, "p99_ms": 0.5},
        "mget": {"calls_per_s": mget_per_s, "p50_ms": 0.19, "p99_ms": 0.5},
        "get": {"calls_per_s": mget_per_s, "p50_ms": 0.18, "p99_ms": 0.5},
        "ratios": {"throughput_to_mget": throughput, "p50_to_mget": p50},
    }


def test_hits_are_judged_by_the_ratios_to_the_bare_mget() -> None:
    results = {
        "eu": {"hit": {"1": _hit(9_200, 10_000, 0.92, 1.05), "64": _hit(8_000, 10_000, 0.8, 1.2)}}
    }
    by_name = {row.figure: row for row in goal_rows({"read_path": {"results": results}})}

    single = "read hit eu (standalone), 1 caller"
    assert by_name[f"{single}: calls/s"].met is True
    assert by_name[f"{single}: calls/s"].measured == "9,200 vs MGET 10,000/s"
    assert by_name[f"{single}: p50"].met is True
    many = "read hit eu (standalone), 64 callers"
    assert by_name[f"{many}: calls/s"].met is False
    assert by_name[f"{many}: p50"].met is False
    assert by_name["read hit us (Cluster), 1 caller: calls/s"].met is None


def test_a_ratio_that_rounds_onto_its_goal_is_shown_to_three_decimals() -> None:
    table = goal_table(
        [
            GoalRow("short by a hair", "-", 0.897, ">= 0.9x", False),
            GoalRow("over by a hair", "-", 1.101, "<= 1.1x", False),
            GoalRow("clear", "-", 0.93, ">= 0.9x", True),
            GoalRow("on the goal", "-", 2.0, "<= 2.0x", True),
            GoalRow("not a ratio goal", "-", 1.004, "flat (< 10 MB)", True),
        ]
    )
    ratios = [line.split(" | ")[2] for line in table.splitlines()[2:]]
    assert ratios == ["0.897x", "1.101x", "0.93x", "2.00x", "1.00x"]
