"""The tls figure: its summaries of the alternating drains and e2e phases, its goal rows, and its
section of the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import report
from bench.goals import goal_rows, goal_table
from bench.latency import Probe
from bench.progress import Drained
from bench.tls import DrainedSet, drain_summary, e2e_summary


def _drained(events_per_s: float) -> Drained:
    return Drained(events=1_000, seconds=1_000 / events_per_s, events_timed=1_000,
                   startup_s=1.0, peak_rss_mb=90.0)  # fmt: skip


def _set(round_: int, transport: str, bare: float, invalidator: float) -> DrainedSet:
    drains = {"bare": _drained(bare), "invalidator-eu": _drained(invalidator)}
    return DrainedSet(round_, transport, drains, lost_purges={"eu": 0})


def _probes(latencies_ms: list[float], *, late: int = 0) -> dict[bytes, Probe]:
    probes = {f"p{i}".encode(): Probe(0.0, ms / 1000) for i, ms in enumerate(latencies_ms)}
    probes.update({f"late{i}".encode(): Probe(0.0) for i in range(late)})
    return probes


def _results() -> dict[str, object]:
    drain = drain_summary(
        [
            _set(0, "plaintext", bare=40_000, invalidator=20_000),
            _set(0, "secure", bare=30_000, invalidator=18_000),
            _set(1, "secure", bare=32_000, invalidator=15_000),
            _set(1, "plaintext", bare=38_000, invalidator=16_000),
        ]
    )
    pooled = {"plaintext": _probes([4.0, 5.0, 6.0]), "secure": _probes([5.0, 6.5, 9.0])}
    phases = [
        {"round": 0, "transport": "plaintext", "achieved_per_s": 1_000.0},
        {"round": 0, "transport": "secure", "achieved_per_s": 990.0},
    ]
    e2e = e2e_summary(pooled, phases, rate=1_000)
    return {"drain": drain, "e2e": e2e, "peak_rss_mb": {"invalidator-eu-secure-e2e": 95.0}}


def test_the_drain_ratios_are_medians_of_each_rounds_ratios() -> None:
    drain = _results()["drain"]
    assert isinstance(drain, dict)
    assert drain["events_per_s"]["secure"]["invalidator-eu"] == {
        "runs": [18_000.0, 15_000.0],
        "median": 16_500.0,
    }
    # Round 0: 18,000 / 20,000 = 0.9; round 1: 15,000 / 16,000 = 0.9375.
    assert drain["secure_to_plaintext"]["invalidator-eu"] == 0.919
    assert drain["to_bare"]["plaintext"]["invalidator-eu"] == pytest.approx(0.461, abs=1e-3)
    assert drain["lost_purges"] == {"plaintext": 0, "secure": 0}
    assert [r["transport"] for r in drain["rounds"]] == [
        "plaintext",
        "secure",
        "secure",
        "plaintext",
    ]


def test_e2e_pools_every_rounds_probes_per_transport() -> None:
    e2e = _results()["e2e"]
    assert isinstance(e2e, dict)
    assert e2e["plaintext"]["ms"]["p50"] == 5.0 and e2e["secure"]["ms"]["p50"] == 6.5
    assert e2e["p50_added_ms"] == 1.5
    assert e2e["secure_to_plaintext"] == {"p50": 1.3, "p99": 1.5}
    assert e2e["secure"]["achieved_per_s"] == [990.0]
    assert (
        e2e_summary(
            {"plaintext": _probes([1.0]), "secure": _probes([1.0], late=2)}, [], rate=1_000
        )["secure"]["late"]
        == 2
    )


def test_the_goal_rows_judge_tls_against_plaintext() -> None:
    rows = {row.figure: row for row in goal_rows({"tls": {"results": _results()}})}
    drain = rows["drain on TLS eu"]
    assert drain.measured == (
        "16,500 vs plaintext 18,000 events/s (to bare: 0.53x on TLS, 0.46x on plaintext)"
    )
    assert (drain.ratio, drain.met) == (0.919, True)
    assert rows["drain on TLS us"].met is None
    assert rows["e2e p50 on TLS"].measured == "6.5 vs plaintext 5.0 ms at 1,000/s"
    assert rows["e2e p50 on TLS"].met is True  # +1.5 ms
    assert (rows["e2e p99 on TLS"].ratio, rows["e2e p99 on TLS"].met) == (1.5, True)
    unmeasured = {row.figure: row for row in goal_rows({})}
    assert unmeasured["e2e p50 on TLS"].met is None
    assert "| e2e p50 on TLS | - | - | <= plaintext + 2 ms | not measured |" in goal_table(
        list(unmeasured.values())
    )


def test_the_tls_drains_and_e2e_invalidators_count_in_the_peak_rss_row() -> None:
    rows = {row.figure: row for row in goal_rows({"tls": {"results": _results()}})}
    assert rows["invalidator peak RSS"].measured == "95 MB"


def test_the_report_renders_the_tls_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    document = {
        "figure": "tls",
        "mode": "short",
        "measured_at": "2026-12-06T19:00:00+00:00",
        "machine": {"cpus": 2, "cpu_model": "x", "python": "3.12", "kernel": "6"},
        "code": {"commit": "0" * 40, "dirty": []},
        "parameters": {"drain_events": 1_000},
        "results": _results(),
    }
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "tls.json").write_text(json.dumps(document))
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(f"{report.BEGIN}\nold\n{report.END}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(report, "_chart", lambda *_: False)  # matplotlib: the bench extra

    report.write_report(tmp_path / "results")

    performance = (tmp_path / "docs" / "performance.md").read_text()
    assert "## tls\n\n" + report.ABOUT["tls"] in performance
    assert "| drain on TLS eu | 16,500 vs plaintext 18,000 events/s" in performance
    assert "| e2e p99 on TLS |" in (tmp_path / "README.md").read_text()
