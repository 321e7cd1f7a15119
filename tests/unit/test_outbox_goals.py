"""The outbox goal rows (commit -> purged through the outbox against publishing after the
commit; the relay's rate) and CPU per event drained, judged from result documents."""

from __future__ import annotations

from typing import Any

from bench.goals import goal_rows


def _path(p50: float, p99: float, achieved: float = 200.0) -> dict[str, Any]:
    return {"achieved_per_s": achieved, "ms": {"p50": p50, "p99": p99, "p999": p99}}


def _at_rate(
    direct: tuple[float, float], outbox: tuple[float, float], *, outbox_rate: float = 200.0
) -> dict[str, Any]:
    return {
        "direct": _path(*direct),
        "outbox": _path(*outbox, achieved=outbox_rate),
        "added_ms": {"p50": outbox[0] - direct[0]},
        "ratios": {"p99": outbox[1] / direct[1]},
    }


def test_the_outbox_is_judged_by_added_p50_and_p99_ratio_per_database_and_rate() -> None:
    e2e = {
        "postgresql": {"200": _at_rate((10.0, 30.0), (12.5, 55.0))},
        "sqlite": {
            "200": _at_rate((10.0, 30.0), (13.5, 65.0)),
            # Faster than the direct path, but at half its write rate: not judged met.
            "1000": _at_rate((30.0, 90.0), (20.0, 60.0), outbox_rate=100.0),
        },
        "debezium_rate": {"events_per_s": 4_000, "bare_events_per_s": 10_000, "ratio_to_bare": 0.4},
    }
    outbox: dict[str, Any] = {
        "postgresql": {
            "relay": {"events_per_s": 6_500, "bare_events_per_s": 10_000, "ratio_to_bare": 0.65}
        },
        "sqlite": {
            "relay": {"events_per_s": 5_000, "bare_events_per_s": 10_000, "ratio_to_bare": 0.5}
        },
    }
    documents = {"outbox_e2e": {"results": e2e}, "outbox": {"results": outbox}}
    by_name = {row.figure: row for row in goal_rows(documents)}

    assert by_name["outbox e2e postgresql at 200 writes/s: p50"].met is True
    assert by_name["outbox e2e postgresql at 200 writes/s: p99"].met is True
    assert by_name["outbox e2e sqlite at 200 writes/s: p50"].met is False  # +3.5 ms
    assert by_name["outbox e2e sqlite at 200 writes/s: p99"].met is False  # 2.17x
    slower = by_name["outbox e2e sqlite at 1,000 writes/s: p50"]
    assert slower.met is False
    assert "(100 writes/s achieved, direct 200: not comparable)" in slower.measured
    assert by_name["outbox e2e sqlite at 1,000 writes/s: p99"].met is False
    assert by_name["outbox e2e postgresql at 1,000 writes/s: p50"].met is None
    assert by_name["outbox relay postgresql: records/s"].met is True
    assert by_name["outbox relay sqlite: records/s"].met is False
    assert (
        by_name["outbox relay sqlite: records/s"].measured
        == "5,000 vs bare 10,000/s (medians of the rounds)"
    )
    debezium = by_name["outbox relay debezium (postgresql): records/s"]
    assert (debezium.met, debezium.measured) == (
        False,
        "4,000 vs bare 10,000/s (medians of the rounds)",
    )


def test_cpu_per_event_is_judged_against_the_bare_consumers() -> None:
    drains = {
        "bare": {"events_per_s": 10_000, "cpu_ms_per_event": 0.05},
        "invalidator-eu": {
            "events_per_s": 5_000,
            "cpu_ms_per_event": 0.08,
            "cpu_per_event_to_bare": 1.6,
        },
        "invalidator-us": {
            "events_per_s": 5_000,
            "cpu_ms_per_event": 0.09,
            "cpu_per_event_to_bare": 1.8,
        },
    }
    documents = {"drain": {"results": {"zipf": {"drains": drains}}}}
    by_name = {row.figure: row for row in goal_rows(documents)}

    assert by_name["CPU per event zipf eu"].met is True
    assert by_name["CPU per event zipf eu"].measured == "0.080 vs bare 0.050 ms"
    assert by_name["CPU per event zipf us"].met is False
    assert by_name["CPU per event uniform eu"].met is None
