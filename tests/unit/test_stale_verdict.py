"""The stale-data harness's verdict (`make stale-check`): a run fails when this system's races
refused no fill, whatever its reads show."""

from __future__ import annotations

from typing import Any

from bench.stale.checker import RegionStaleness
from bench.stale.report import THIS_SYSTEM, VariantOutcome, failures
from bench.stale.workload import PhaseLog, Read, Write

READS = 4
REGIONS = ("eu", "us")


def _outcome(name: str, *, stale_reads: int, details: dict[str, Any]) -> VariantOutcome:
    log = PhaseLog()
    for n in range(READS):
        log.reads.append(Read(float(n), REGIONS[n % 2], "item", 1, hit=True))
    log.writes.append(Write("item", 2, 0.5))
    regions = {region: RegionStaleness(reads=2, stale_reads=stale_reads) for region in REGIONS}
    return VariantOutcome(name, log, regions, regions, purges=None, details=details)


def _run(fills_refused: int) -> list[str]:
    return failures(
        [
            _outcome(THIS_SYSTEM, stale_reads=0, details={"fills_refused": fills_refused}),
            _outcome("ttl-only", stale_reads=3, details={}),
        ],
        reads_wanted=READS,
    )


def test_a_run_whose_races_refused_a_fill_passes() -> None:
    assert _run(fills_refused=1) == []


def test_a_run_whose_races_refused_no_fill_fails() -> None:
    assert _run(fills_refused=0) == [
        f"{THIS_SYSTEM}: 0 fills refused, so no fill raced a purge or the conditional fill "
        "stored it anyway"
    ]
