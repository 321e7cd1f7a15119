"""The drain figure: the same pre-produced records drained by each consumer, one after another.

Per workload (Zipf(1.1) over 10k companies, uniform over 1M): every group of the figure is
committed at the log end, N events are produced, then each consumer drains exactly those
records, one after the other: the bare aiokafka group (the limit), then the invalidator of
each region. The naive FastStream subscriber drains a small set of its own, produced after the
drains' keys are removed (its keyspace is recorded). Drained means the group committed the log
end, polled from outside.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from bench.lost_purges import missing_keys, unlink_keys
from bench.orders_load import (
    WORKLOADS,
    CompanyPicker,
    OrderRecord,
    generation_keys,
    order_records,
    produce_all,
)
from bench.processes import BenchProcess, invalidator_process, running
from bench.progress import Drained, wait_drained
from bench.settings_env import kafka_environment
from contracts import KafkaConnection, topics
from contracts.example_orders import CATALOGUE
from invalidator.operators import end_offsets, start_at_log_end
from invalidator.settings import InvalidatorSettings
from producers import connect_redis

DRAIN_TIMEOUT_FLOOR_S = 60.0
NAIVE_TIMEOUT_S = 600.0  # SCAN per namespace: its speed depends on the keyspace left in Redis
SLOWEST_EVENTS_PER_S = 500.0  # a drain slower than this is stuck, not slow


@dataclass(frozen=True)
class DrainParams:
    """What the drain figure runs."""

    events: int = 200_000
    naive_events: int = 500
    naive_budget_s: float = 60.0
    """The naive baseline is timed for at most this long (its rate is what it did by then)."""
    workloads: tuple[str, ...] = WORKLOADS
    regions: tuple[str, ...] = ("eu", "us")
    check_only: bool = False
    """Only the invalidators (no bare or naive): the integration test's size."""


@dataclass
class WorkloadOutcome:
    """The drains of one workload."""

    drains: dict[str, dict[str, Any]] = field(default_factory=dict)
    lost_purges: dict[str, int] = field(default_factory=dict)


def _timeout(events: int) -> float:
    return max(DRAIN_TIMEOUT_FLOOR_S, events / SLOWEST_EVENTS_PER_S)


def drain_figures(drained: Drained, *, limit: Drained | None) -> dict[str, Any]:
    """A drain's figures for the results: its timing, rate, CPU per event, and its ratios to
    `limit` (the bare consumer's drain of the same records) when given."""
    figures: dict[str, Any] = {**asdict(drained), "events_per_s": round(drained.events_per_s, 1)}
    cpu = drained.cpu_ms_per_event
    figures["cpu_ms_per_event"] = None if cpu is None else round(cpu, 4)
    if limit is not None and limit.events_per_s > 0:
        figures["ratio_to_bare"] = round(drained.events_per_s / limit.events_per_s, 3)
    bare_cpu = None if limit is None else limit.cpu_ms_per_event
    if cpu is not None and bare_cpu:
        figures["cpu_per_event_to_bare"] = round(cpu / bare_cpu, 3)
    return figures


async def timed_drain(
    kafka: KafkaConnection,
    processes: list[BenchProcess],
    group_id: str,
    *,
    starts: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
    timeout_s: float | None = None,
    budget_s: float | None = None,
) -> Drained:
    """Start the processes, time their group's drain of `starts`..`ends`, stop them; the timing.

    kafka: the brokers, as a login that may read the group's offsets.
    processes: the group's processes.
    group_id: their group (committed at `starts` before the records were produced).
    starts, ends: the offsets before and after the records were produced.
    timeout_s: how long the drain may take (default: from the number of records).
    budget_s: stop timing this long after the first commit, drained or not.
    """
    async with running(processes):
        started_at = time.monotonic()
        events = sum(ends[tp] - starts[tp] for tp in ends)
        drained = await wait_drained(
            kafka,
            group_id,
            starts=starts,
            ends=ends,
            processes=processes,
            started_at=started_at,
            timeout_s=timeout_s or _timeout(events),
            members=len(processes),
            budget_s=budget_s,
        )
    print(
        f"  {', '.join(p.name for p in processes)}: {drained.events_per_s:,.0f} events/s "
        f"({drained.events} events, startup {drained.startup_s:.1f} s, "
        f"peak RSS {drained.peak_rss_mb or 0:.0f} MB)",
        flush=True,
    )
    return drained


def bare_process(
    kafka: KafkaConnection, group_id: str, log_dir: Path, *, name: str = "bare-aiokafka"
) -> BenchProcess:
    """The bare aiokafka consumer group as a process.

    kafka: the brokers and the login it connects with (TLS and SASL included).
    group_id: its group.
    log_dir: where its log goes.
    name: the process's name in reports and of its log.
    """
    return BenchProcess(
        name,
        [sys.executable, "-m", "bench.bare_consumer", "--group", group_id, *CATALOGUE.topics()],
        env=kafka_environment(kafka),
        log_path=log_dir / f"{name}.log",
    )


def naive_process(
    settings: InvalidatorSettings, region: str, group_id: str, log_dir: Path
) -> BenchProcess:
    """The naive FastStream SCAN+DEL subscriber of a region as a process."""
    return BenchProcess(
        f"naive-{region}",
        [
            sys.executable,
            "-m",
            "bench.naive_subscriber",
            "--bootstrap-servers",
            settings.kafka.bootstrap_servers,
            "--redis-target",
            settings.targets(region)[0].model_dump_json(),
            "--group",
            group_id,
            "--topic",
            topics.ORDERS,
        ],
        env={},
        log_path=log_dir / f"naive-{region}.log",
    )


async def produce_for_groups(
    kafka: KafkaConnection,
    records: list[OrderRecord],
    group_ids: list[str],
    *,
    publisher: KafkaConnection | None = None,
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """Commit the log end for every group, produce the records; (starts, ends).

    kafka: the brokers, as a login that may commit the groups' offsets.
    records: what to produce.
    group_ids: the groups that will drain them.
    publisher: the login that produces them (default `kafka`).
    """
    catalogue_topics = CATALOGUE.topics()
    for group_id in group_ids:
        await start_at_log_end(kafka, group_id, catalogue_topics)
    starts = await end_offsets(kafka, catalogue_topics)
    produced_at = time.monotonic()
    await produce_all(publisher or kafka, records)
    ends = await end_offsets(kafka, catalogue_topics)
    produced = sum(ends[tp] - starts[tp] for tp in ends)
    if produced != len(records):
        raise RuntimeError(
            f"{produced} records arrived on {catalogue_topics} while {len(records)} were "
            "produced: something else publishes to this broker; use a stack of your own"
        )
    print(
        f"  produced {len(records):,} events in {time.monotonic() - produced_at:.1f} s",
        flush=True,
    )
    return starts, ends


async def drain_workload(
    settings: InvalidatorSettings,
    params: DrainParams,
    workload: str,
    *,
    run_id: str,
    log_dir: Path,
) -> WorkloadOutcome:
    """Produce the workload's events once and drain them with every consumer of the figure.

    settings: the endpoints.
    params: sizes and variants.
    workload: `zipf` or `uniform`.
    run_id: unique to the run (ids and group names).
    log_dir: where the processes' logs go.
    """
    outcome = WorkloadOutcome()
    prefix = f"{run_id}-{workload}"
    picker = CompanyPicker(workload, run_id=prefix)
    records = order_records(picker, params.events, run_id=prefix, tag="d")
    # The limit runs before and after the invalidators, and the faster run is the limit: on a
    # noisy machine one run alone can be slow by chance and flatter every ratio.
    bare_groups = [f"{prefix}-bare", f"{prefix}-bare-after"]
    groups = [f"{prefix}.{region}" for region in params.regions]
    if not params.check_only:
        groups += bare_groups
    print(f"[drain {workload}] {params.events:,} events", flush=True)
    starts, ends = await produce_for_groups(settings.kafka, records, groups)

    async def bare_run(group_id: str) -> Drained:
        process = bare_process(settings.kafka, group_id, log_dir)
        return await timed_drain(settings.kafka, [process], group_id, starts=starts, ends=ends)

    bare_runs = [] if params.check_only else [await bare_run(bare_groups[0])]
    drained_by: dict[str, Drained] = {}
    for region in params.regions:
        process = invalidator_process(region, group_prefix=prefix, log_dir=log_dir)
        drained_by[f"invalidator-{region}"] = await timed_drain(
            settings.kafka, [process], f"{prefix}.{region}", starts=starts, ends=ends
        )
    if not params.check_only:
        bare_runs.append(await bare_run(bare_groups[1]))
    limit = max(bare_runs, key=lambda run: run.events_per_s) if bare_runs else None
    if limit is not None:
        outcome.drains["bare"] = {
            **drain_figures(limit, limit=None),
            "runs_events_per_s": [round(run.events_per_s, 1) for run in bare_runs],
        }
    for name, drained in drained_by.items():
        outcome.drains[name] = drain_figures(drained, limit=limit)

    keys = generation_keys(records)
    clients = {region: connect_redis(settings.targets(region)[0]) for region in params.regions}
    try:
        for region, client in clients.items():
            outcome.lost_purges[region] = len(await missing_keys(client, keys))
        print(f"  lost purges: {outcome.lost_purges}", flush=True)
        for client in clients.values():
            await unlink_keys(client, keys)
    finally:
        for client in clients.values():
            await client.aclose()
    # After the clean-up: with the drains' keys left (up to a million) SCAN per event would
    # take seconds; its keyspace is recorded with the figure.
    if not params.check_only and params.naive_events:
        outcome.drains["naive-eu"] = await _naive(
            settings, params, picker, prefix=prefix, log_dir=log_dir, limit=limit
        )
    return outcome


async def _naive(
    settings: InvalidatorSettings,
    params: DrainParams,
    picker: CompanyPicker,
    *,
    prefix: str,
    log_dir: Path,
    limit: Drained | None,
) -> dict[str, Any]:
    group_id = f"{prefix}-naive.eu"
    records = order_records(picker, params.naive_events, run_id=prefix, tag="n")
    client = connect_redis(settings.targets("eu")[0])
    try:
        keyspace = int(await client.dbsize())
    finally:
        await client.aclose()
    starts, ends = await produce_for_groups(settings.kafka, records, [group_id])
    drained = await timed_drain(
        settings.kafka,
        [naive_process(settings, "eu", group_id, log_dir)],
        group_id,
        starts=starts,
        ends=ends,
        timeout_s=NAIVE_TIMEOUT_S,
        budget_s=params.naive_budget_s,
    )
    return {**drain_figures(drained, limit=limit), "keyspace": keyspace}
