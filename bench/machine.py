"""What a result was measured on: the machine, the code version; writing a figure's JSON."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path("bench") / "results"
SHORT_RESULTS_DIR = Path(".stack") / "bench" / "results"


def machine() -> dict[str, Any]:
    """CPU count and model, Python version, kernel."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def code_version() -> dict[str, Any]:
    """The git commit and the paths that differ from it (results aside)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, check=False
        ).stdout.rstrip("\n")

    changed = git("status", "--porcelain", "--", ".", ":(exclude)bench/results").splitlines()
    return {"commit": git("rev-parse", "HEAD"), "dirty": [line[3:] for line in changed]}


def write_result(
    figure: str,
    *,
    short: bool,
    parameters: dict[str, Any],
    results: dict[str, Any],
    output_dir: Path,
) -> Path:
    """Write `<output_dir>/<figure>.json` atomically; its path.

    figure: the figure's name (drain, latency, purge_cost, scale_out, publishing, soak).
    short: whether this was the short (CI) run.
    parameters: what the run was asked to do.
    results: what it measured.
    output_dir: where result files go.
    """
    document = {
        "figure": figure,
        "mode": "short" if short else "full",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "code": code_version(),
        "parameters": parameters,
        "results": results,
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"{figure}.json"
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(partial, path)
    return path


def percentiles_ms(samples_s: list[float]) -> dict[str, float]:
    """p50, p99, p99.9 and max of latencies given in seconds, in milliseconds (nearest rank)."""
    if not samples_s:
        return {"count": 0, "p50": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0}
    ordered = sorted(samples_s)

    def rank(fraction: float) -> float:
        index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
        return round(ordered[index] * 1000, 3)

    return {
        "count": len(ordered),
        "p50": rank(0.5),
        "p99": rank(0.99),
        "p999": rank(0.999),
        "max": round(ordered[-1] * 1000, 3),
    }


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of every core since boot, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def cpu_busy_since(start: tuple[int, int]) -> float:
    """The fraction of the machine's CPU time that was busy since `start` (a `cpu_times()`)."""
    busy, total = cpu_times()
    return round((busy - start[0]) / max(1, total - start[1]), 3)
