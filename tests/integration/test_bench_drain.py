"""The short drain of the benchmark suite: real invalidator processes lose no purge."""

from __future__ import annotations

import uuid
from pathlib import Path

from bench.drain import DrainParams, drain_workload
from invalidator import InvalidatorSettings

EVENTS = 3_000


async def test_invalidator_processes_drain_the_pre_produced_events_losing_no_purge(
    settings: InvalidatorSettings, tmp_path: Path
) -> None:
    params = DrainParams(events=EVENTS, naive_events=0, workloads=("zipf",), check_only=True)

    outcome = await drain_workload(
        settings, params, "zipf", run_id=f"tb{uuid.uuid4().hex[:8]}", log_dir=tmp_path
    )

    assert outcome.lost_purges == {"eu": 0, "us": 0}
    for region in ("eu", "us"):
        drained = outcome.drains[f"invalidator-{region}"]
        assert drained["events"] == EVENTS
        assert drained["events_per_s"] > 0
