"""`python -m bench.report` regenerates docs/performance.md and the README's goals table from the
result files, and keeps the notes written by hand in docs/performance.md."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench import report

REPO = Path(__file__).resolve().parents[2]
NOTES = f"{report.NOTES_BEGIN}\n### Where a goal is not met\n\nWritten by hand.\n{report.NOTES_END}"


def test_the_committed_report_holds_its_notes() -> None:
    assert "Where a goal is not met" in report.hand_written_notes(
        (REPO / "docs" / "performance.md").read_text()
    )


def test_regenerating_keeps_the_notes_and_rewrites_both_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(REPO / "bench" / "results", tmp_path / "results")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "performance.md").write_text(f"# old\n\n{NOTES}\n\n## old figures\n")
    (tmp_path / "README.md").write_text(f"intro\n{report.BEGIN}\nold\n{report.END}\nrest\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(report, "_chart", lambda *_: False)  # matplotlib: the bench extra

    report.write_report(tmp_path / "results")

    document = (tmp_path / "docs" / "performance.md").read_text()
    readme = (tmp_path / "README.md").read_text()
    assert document.count(NOTES) == 1 and "## old figures" not in document
    assert document.index("## Goals") < document.index(NOTES) < document.index("## drain")
    table = readme.split(f"{report.BEGIN}\n")[1].split(f"\n{report.END}")[0]
    assert table.startswith("| figure | measured |") and table in document
    assert readme.startswith("intro\n") and readme.endswith("\nrest\n")
