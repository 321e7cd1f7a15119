"""`python -m bench.stale`: this system and two naive baselines under the same races, in one run.

Runs the variants one after the other against the real Kafka broker and both regions' Redis
(the local stack is started when INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS and INVALIDATOR_REGIONS are
not set), writes the results as JSON and prints a table. Exit status 0 only when this system
served no stale read beyond the window in any region, every purge was seen, its conditional
fill refused at least one fill, and both baselines served stale reads in every region (proof
that the races were exercised); 1 otherwise; 2 when the run could not be made.

`--topology mirrored` (the stack's `up --mirrored`, started when MIRROR_* are not set): this
system's writes are published in each item's home region, to its own cluster, and each region's
invalidator reads its own cluster (the other region's events arrive through MirrorMaker and the
link); the window then includes the link. The baselines are unchanged (they show the races).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.entrypoint import cancel_on_signals, run_on_stack, settings_with_regions
from bench.link import Link
from bench.stack import MIRROR_VARIABLES, start_mirrored_stack
from bench.stale.checker import check_reads, purge_latency
from bench.stale.pauses import GcPauses
from bench.stale.report import (
    THIS_SYSTEM,
    VariantOutcome,
    failures,
    races_line,
    text_table,
    variant_document,
    window_line,
)
from bench.stale.store import ItemStore
from bench.stale.variants import BenchVariant, DeleteOnEvent, ThisSystem, TtlOnly
from bench.stale.workload import PhaseLog, Workload, WorkloadParams
from demo.topology import TOPOLOGIES, mirror_clusters
from invalidator.settings import InvalidatorSettings

RESULTS_DIR = Path("bench") / "results"
LOG_DIR = Path(".stack") / "stale"
SHORT_READS = 7_000
PROGRESS_EVERY_S = 5.0


async def run_phase(
    variant: BenchVariant, *, items: list[str], regions: list[str], params: WorkloadParams
) -> PhaseLog:
    """Start the variant, run the workload on a fresh database, stop the variant.

    variant: the caching under test.
    items: the hot items of this phase (unique to the run and the variant).
    regions: where readers read.
    params: the workload, the same for every variant.
    """
    store = ItemStore(items)
    # What exists now (modules, earlier phases' logs) is never garbage: keep it out of the
    # collections, whose pauses would delay every timestamp of this phase.
    gc.collect()
    gc.freeze()
    print(f"[{variant.name}] starting", flush=True)
    await variant.start()
    try:
        workload = Workload(variant, store, items=items, regions=regions, params=params)
        with GcPauses() as pauses:
            log = await _supervised(workload, variant, reads_wanted=params.reads)
        log.gc_pauses = pauses.summary()
    finally:
        await variant.stop()
        store.close()
    print(
        f"[{variant.name}] done: {len(log.reads)} reads, {len(log.writes)} writes "
        f"in {log.elapsed_s:.1f} s",
        flush=True,
    )
    return log


async def _supervised(workload: Workload, variant: BenchVariant, *, reads_wanted: int) -> PhaseLog:
    """Run the workload, checking the variant's background parts and printing progress."""
    running = asyncio.create_task(workload.run())
    started = time.monotonic()
    try:
        while True:
            done, _ = await asyncio.wait({running}, timeout=PROGRESS_EVERY_S)
            if done:
                return running.result()
            variant.check_running()
            print(
                f"[{variant.name}] {time.monotonic() - started:5.1f}s "
                f"reads {workload.reads_done}/{reads_wanted} writes {len(workload.log.writes)}",
                flush=True,
            )
    finally:
        # Failed, interrupted or cancelled: the workload stops before the variant does.
        if not running.done():
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running


async def run(
    params: WorkloadParams, settings: InvalidatorSettings, *, topology: str = "one-cluster"
) -> dict[str, Any]:
    """Run the three variants and check them; the results document.

    params: the workload.
    settings: the endpoints.
    topology: `one-cluster` or `mirrored` (this system on each region's own cluster).
    """
    regions = sorted(settings.regions)
    run_id = f"sb{uuid.uuid4().hex[:10]}"
    started_at = datetime.now(UTC)
    clusters, link = None, None
    if topology == "mirrored":
        if not all(os.environ.get(name) for name in MIRROR_VARIABLES):
            os.environ.update(start_mirrored_stack())
        clusters = mirror_clusters(regions)
        link = dataclasses.asdict(await Link.from_env().status())
    variants: list[tuple[str, BenchVariant]] = [
        ("ts", ThisSystem(settings, run_id=run_id, log_dir=LOG_DIR, clusters=clusters)),
        ("tt", TtlOnly(settings)),
        ("de", DeleteOnEvent(settings, run_id=run_id)),
    ]
    logs: dict[str, tuple[PhaseLog, BenchVariant]] = {}
    for tag, variant in variants:
        items = [f"{run_id}-{tag}{n:02d}" for n in range(params.items)]
        logs[variant.name] = (
            await run_phase(variant, items=items, regions=regions, params=params),
            variant,
        )
    this_system = purge_latency(logs[THIS_SYSTEM][1].landings, regions)
    window_s = this_system.window_s
    outcomes = []
    for name, (log, variant) in logs.items():
        purges = (
            purge_latency(variant.landings, regions) if log.writes and variant.landings else None
        )
        outcomes.append(
            VariantOutcome(
                name=name,
                log=log,
                regions=check_reads(log.reads, log.writes, window_s=window_s),
                tighter=check_reads(log.reads, log.writes, window_s=this_system.p999_s),
                purges=purges,
                details=variant.details(),
            )
        )
    found = failures(outcomes, reads_wanted=params.reads)
    return {
        "run_id": run_id,
        "topology": topology,
        "link": link,
        "started_at": started_at.isoformat(timespec="seconds"),
        "code": _code_version(),
        "cpus": os.cpu_count(),
        "parameters": dataclasses.asdict(params),
        "window_ms": round(window_s * 1000, 2),
        "p999_window_ms": round(this_system.p999_s * 1000, 2),
        "window_definition": (
            "the maximum, over every write of the this-system phase, of the time from the "
            "write's commit being acknowledged to its purge being seen (generation key polled) "
            "in every region; applied to all three variants"
        ),
        "stale_definition": (
            "a read starting at t0 is stale when the version it returned is older than the "
            "newest write of its item acknowledged before t0 - window; staleness is t0 minus "
            "the acknowledgement of the oldest write newer than the returned version"
        ),
        "variants": {outcome.name: variant_document(outcome) for outcome in outcomes},
        "passed": not found,
        "failures": found,
    }


def _code_version() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, check=False
        ).stdout.rstrip("\n")

    # The working tree may be shared: name what differed from the commit (results aside).
    changed = git("status", "--porcelain", "--", ".", ":(exclude)bench/results").splitlines()
    return {"commit": git("rev-parse", "HEAD"), "uncommitted": [line[3:] for line in changed]}


def _write(document: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(partial, path)


async def _main(params: WorkloadParams, output: Path, topology: str) -> int:
    cancel_on_signals()
    settings = settings_with_regions()
    document = await run(params, settings, topology=topology)
    _write(document, output)
    print()
    print(window_line(document))
    print(races_line(document))
    print(text_table(document))
    print(f"\nresults in {output}")
    for failure in document["failures"]:
        print(f"FAILED: {failure}")
    if document["passed"]:
        print("OK: no stale read beyond the window for this system; both baselines served some")
    return 0 if document["passed"] else 1


def main() -> int:
    """Parse the options, make sure the services are there, run; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bench.stale", description=__doc__)
    parser.add_argument(
        "--reads", type=int, default=None, help="reads per variant, both regions (default 20000)"
    )
    parser.add_argument(
        "--short", action="store_true", help=f"the CI size: {SHORT_READS} reads per variant"
    )
    parser.add_argument("--output", type=Path, help="where the JSON goes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--topology",
        choices=TOPOLOGIES,
        default="one-cluster",
        help="mirrored: writes published in their home region, each region's invalidator on its "
        "own cluster (results in stale-mirrored*.json)",
    )
    args = parser.parse_args()
    reads = args.reads or (SHORT_READS if args.short else WorkloadParams.reads)
    # The short run is a check (CI, make stale-check): its results go next to the logs, out of
    # version control, so that it neither overwrites nor dirties the committed full results.
    name = "stale" if args.topology == "one-cluster" else "stale-mirrored"
    output = args.output or (
        LOG_DIR / f"{name}-short.json" if args.short else RESULTS_DIR / f"{name}.json"
    )
    params = WorkloadParams(reads=reads, seed=args.seed)
    return run_on_stack(
        lambda: _main(params, output, args.topology), prog="bench.stale", cannot_run=(RuntimeError,)
    )


if __name__ == "__main__":
    sys.exit(main())
