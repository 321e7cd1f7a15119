"""`python -m bench`: every performance figure against its limit, in one run, on the real stack.

Figures: publishing, drain (with the naive baseline), scale-out, latency, purge cost, replica
acknowledgement, the outbox (write latency and relay rate), cross-region (the mirrored topology:
`stack.sh up --mirrored`, started when MIRROR_* are not given), the read path (`CacheClient.fetch`
against bare redis-py reads), the watchdog (the drain with and without it), tls (drain and
e2e on the secure profile against plaintext: `stack.sh up --secure`, started unless --secure-env
names its settings); the soak alone with --soak. Short (--short, CI): small sizes, results in
.stack/bench/results. Full: bench/results, then docs/performance.md, the charts and the README
table are regenerated.
Exit status 0 when the run completed with no lost purge (ratios below their goals are reported,
not failed); 1 on a lost or late purge or a failed figure; 2 when the run could not be made.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.cross_region import CrossRegionParams, run_cross_region
from bench.drain import DrainParams, drain_workload
from bench.entrypoint import cancel_on_signals, run_on_stack, settings_with_regions
from bench.goals import goal_rows, goal_table
from bench.latency import LatencyParams, run_latency
from bench.machine import RESULTS_DIR, SHORT_RESULTS_DIR, write_result
from bench.outbox import OutboxParams, run_outbox
from bench.outbox_e2e import OutboxE2EParams, run_outbox_e2e
from bench.publishing import PublishingParams, run_publishing
from bench.purge_cost import PurgeCostParams, run_purge_cost
from bench.read_path import ReadPathParams, run_read_path
from bench.replica_ack import ReplicaAckParams, run_replica_ack
from bench.report import load_documents, write_report
from bench.scale_out import ScaleOutParams, run_scale_out
from bench.secure_stack import secure_profile
from bench.soak import SoakParams, run_soak
from bench.tls import TRANSPORTS, TlsParams, run_tls
from bench.watchdog import WatchdogParams, run_watchdog
from contracts import SettingsError
from invalidator.settings import InvalidatorSettings

FIGURES = (
    "publishing",
    "drain",
    "scale_out",
    "latency",
    "purge_cost",
    "replica_ack",
    "outbox",
    "outbox_e2e",
    "cross_region",
    "read_path",
    "watchdog",
    "tls",
)
LOG_DIR = Path(".stack") / "bench" / "logs"

SHORT = {
    "publishing": PublishingParams(
        sequential_events=1_000, batched_events=10_000, bare_events=10_000
    ),
    "drain": DrainParams(events=20_000, naive_events=100, naive_budget_s=10.0),
    "scale_out": ScaleOutParams(events=60_000, processes=(1, 2)),
    "latency": LatencyParams(seconds=5.0, settle_timeout_s=60.0),
    "purge_cost": PurgeCostParams(sizes=(10_000,), generation_purges=100),
    "replica_ack": ReplicaAckParams(single_purges=300, batches=10, rounds=5),
    "outbox": OutboxParams(writes=500, rounds=5, relay_events=2_500, relay_rounds=2),
    "outbox_e2e": OutboxE2EParams(seconds=4.0, rounds=2, probes_per_s=50, debezium=False),
    "cross_region": CrossRegionParams(seconds=3.0, settle_timeout_s=60.0, link_round_trips=10),
    "read_path": ReadPathParams(calls=500, rounds=5, miss_calls=250),
    "watchdog": WatchdogParams(events=20_000, rounds=3),
    "tls": TlsParams(
        drain_events=10_000,
        drain_rounds=1,
        regions=("eu",),
        seconds=2.0,
        e2e_rounds=2,
        settle_timeout_s=30.0,
    ),
}
FULL = {
    "publishing": PublishingParams(),
    "drain": DrainParams(),
    "scale_out": ScaleOutParams(),
    "latency": LatencyParams(),
    "purge_cost": PurgeCostParams(),
    "replica_ack": ReplicaAckParams(),
    "outbox": OutboxParams(),
    "outbox_e2e": OutboxE2EParams(),
    "cross_region": CrossRegionParams(),
    "read_path": ReadPathParams(),
    "watchdog": WatchdogParams(),
    "tls": TlsParams(),
}


async def run_figures(
    settings: InvalidatorSettings,
    figures: list[str],
    *,
    short: bool,
    output_dir: Path,
    secure_env: Path | None = None,
) -> list[str]:
    """Run the figures, writing each one's results; the failures found.

    settings: the endpoints.
    figures: which figures to run, in order.
    short: the CI sizes.
    output_dir: where the result files go.
    secure_env: the `stack.sh env --secure` lines of a running secure profile, for tls
        (default: `stack.sh up --secure`).
    """
    sizes: dict[str, Any] = SHORT if short else FULL
    run_id = f"bn{uuid.uuid4().hex[:8]}"
    failures: list[str] = []
    for figure in figures:
        started = time.monotonic()
        params = sizes[figure]
        if figure == "publishing":
            results = await run_publishing(settings, params, run_id=run_id)
        elif figure == "drain":
            results = await _drain(settings, params, run_id=run_id)
            for workload, outcome in results.items():
                for region, lost in outcome["lost_purges"].items():
                    if lost:
                        failures.append(f"drain {workload}: {lost} purges lost in {region}")
        elif figure == "scale_out":
            results = await run_scale_out(settings, params, run_id=run_id, log_dir=LOG_DIR)
        elif figure == "latency":
            results = await run_latency(settings, params, run_id=run_id, log_dir=LOG_DIR)
            for rate, figures_at in results.items():
                if rate.isdigit() and figures_at["this_system"]["late"]:
                    late = figures_at["this_system"]["late"]
                    failures.append(f"latency at {rate}/s: {late} probes never purged in time")
        elif figure == "purge_cost":
            results = await run_purge_cost(settings, params, run_id=run_id)
        elif figure == "replica_ack":
            results = await run_replica_ack(settings, params, run_id=run_id)
        elif figure == "cross_region":
            results = await run_cross_region(settings, params, run_id=run_id, log_dir=LOG_DIR)
            failures += _cross_region_late(results)
        elif figure == "outbox_e2e":
            results = await run_outbox_e2e(settings, params, run_id=run_id, log_dir=LOG_DIR)
            failures += [
                f"outbox_e2e {database} {path} at {rate}/s: {figures[path]['late']} probes never "
                "purged in time"
                for database, at_rates in results.items()
                if database in params.databases
                for rate, figures in at_rates.items()
                if rate.isdigit()
                for path in ("direct", "outbox")
                if figures[path]["late"]
            ] + [
                f"outbox_e2e debezium at {rate}/s: {figures['debezium']['late']} probes never "
                "purged in time"
                for rate, figures in results.get("debezium", {}).items()
                if figures["debezium"]["late"]
            ]
        elif figure == "read_path":
            results = await run_read_path(settings, params, run_id=run_id)
        elif figure == "watchdog":
            results = await run_watchdog(settings, params, run_id=run_id, log_dir=LOG_DIR)
            if results["lost_purges"]:
                failures.append(f"watchdog: {results['lost_purges']} purges lost in the drains")
            missing = results["watchdog"]["outcomes"].get("missing", 0)
            if missing:
                failures.append(f"watchdog: {missing} sampled events' purges not seen")
        elif figure == "tls":
            results = await _tls(settings, params, run_id=run_id, secure_env=secure_env)
            failures += _tls_failures(results)
        else:
            results = await run_outbox(settings, params, run_id=run_id)
        results["duration_s"] = round(time.monotonic() - started, 1)
        path = write_result(
            figure, short=short, parameters=dataclasses.asdict(params), results=results,
            output_dir=output_dir,
        )  # fmt: skip
        print(f"  -> {path} ({results['duration_s']} s)", flush=True)
    return failures


def _cross_region_late(results: dict[str, Any]) -> list[str]:
    """A failure per rate and region where probes never landed."""
    return [
        f"cross_region at {rate}/s: {figures[name]['late']} probes never purged in "
        + name.removeprefix("purged_")
        for rate, figures in results.items()
        if rate.isdigit()
        for name in figures
        if name.startswith("purged_") and figures[name]["late"]
    ]


async def _tls(
    settings: InvalidatorSettings, params: TlsParams, *, run_id: str, secure_env: Path | None
) -> dict[str, Any]:
    """The tls figure, the secure profile brought up first (its time recorded apart)."""
    started = time.monotonic()
    print("[tls] the secure profile: stack.sh up --secure" if secure_env is None
          else f"[tls] the secure profile of {secure_env}", flush=True)  # fmt: skip
    profile = await asyncio.to_thread(secure_profile, secure_env)
    profile_s = round(time.monotonic() - started, 1)
    return {**await run_tls(settings, params, profile, run_id=run_id, log_dir=LOG_DIR),
            "secure_profile_up_s": profile_s}  # fmt: skip


def _tls_failures(results: dict[str, Any]) -> list[str]:
    """A failure per transport whose drains lost purges or whose probes never landed."""
    return [
        f"tls drain {transport}: {lost} purges lost"
        for transport, lost in results["drain"]["lost_purges"].items()
        if lost
    ] + [
        f"tls e2e {transport}: {results['e2e'][transport]['late']} probes never purged in time"
        for transport in TRANSPORTS
        if results["e2e"][transport]["late"]
    ]


async def _drain(
    settings: InvalidatorSettings, params: DrainParams, *, run_id: str
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for workload in params.workloads:
        outcome = await drain_workload(settings, params, workload, run_id=run_id, log_dir=LOG_DIR)
        results[workload] = {"drains": outcome.drains, "lost_purges": outcome.lost_purges}
    return results


async def _main(args: argparse.Namespace) -> int:
    cancel_on_signals()
    settings = settings_with_regions()
    output_dir: Path = args.output_dir or (SHORT_RESULTS_DIR if args.short else RESULTS_DIR)
    started = time.monotonic()
    if args.soak:
        params = SoakParams(seconds=args.soak_seconds)
        results = await run_soak(settings, params, run_id=f"bn{uuid.uuid4().hex[:8]}",
                                 log_dir=LOG_DIR)  # fmt: skip
        write_result("soak", short=False, parameters=dataclasses.asdict(params),
                     results=results, output_dir=output_dir)  # fmt: skip
        failures: list[str] = []
    else:
        figures = args.figures.split(",") if args.figures else list(FIGURES)
        unknown = set(figures) - set(FIGURES)
        if unknown:
            raise SettingsError(f"unknown figures {sorted(unknown)}; choose from {FIGURES}")
        failures = await run_figures(
            settings, figures, short=args.short, output_dir=output_dir, secure_env=args.secure_env
        )
    print(f"\nbench done in {time.monotonic() - started:.0f} s; results in {output_dir}\n")
    print(goal_table(goal_rows(load_documents(output_dir))))
    if not args.short and output_dir == RESULTS_DIR:
        for path in write_report(RESULTS_DIR):
            print(f"wrote {path}")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


def main() -> int:
    """Parse the options, make sure the services are there, run; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the CI sizes (about 2 minutes)")
    parser.add_argument("--figures", help=f"comma-separated subset of {','.join(FIGURES)}")
    parser.add_argument("--soak", action="store_true", help="only the RSS soak (full bench)")
    parser.add_argument("--soak-seconds", type=float, default=SoakParams.seconds)
    parser.add_argument("--output-dir", type=Path, help="where the result files go")
    parser.add_argument(
        "--secure-env",
        type=Path,
        help="a file of `stack.sh env --secure`'s lines, for tls (default: stack.sh up --secure)",
    )
    args = parser.parse_args()
    return run_on_stack(lambda: _main(args), prog="bench")


if __name__ == "__main__":
    sys.exit(main())
