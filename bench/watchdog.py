"""The watchdog figure: the invalidator's drain rate with and without a consistency watchdog
(`invalidator watch`, 1 in N sampled) beside it, alternating in one run, and the watchdog's CPU
time per sampled event.

Each drain has a set of its own, all of the same size and shape (the same Zipf draws over
companies new to the run), produced after the drain's groups were committed at the log end.
Without: one `invalidator run` drains it. With: the watchdog process starts first on the same
records (its own group), then the invalidator; the drain is timed the same way, and the
watchdog's CPU is read from /proc from its readiness until every sampled event is judged.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from bench.lost_purges import lost_purges
from bench.orders_load import CompanyPicker, generation_keys, order_records, produce_all
from bench.processes import BenchProcess, cpu_seconds, invalidator_process, running
from bench.progress import Drained, wait_drained
from contracts import SettingsError
from contracts.example_orders import CATALOGUE, EXAMPLE_CATALOGUE
from invalidator.operators import end_offsets, start_at_log_end
from invalidator.settings import InvalidatorSettings

VARIANTS = ("without", "with")
SLOWEST_EVENTS_PER_S = 500.0
"""A drain slower than this is stuck, not slow (as the drain figure's)."""
READY_TIMEOUT_S = 90.0
POLL_S = 0.2


@dataclass(frozen=True)
class WatchdogParams:
    """What the watchdog figure runs."""

    events: int = 100_000
    """Per drain (every drain has a set of its own, this size)."""
    rounds: int = 3
    """Each round drains once without and once with the watchdog, the order alternating."""
    sample_every: int = 10
    region: str = "eu"
    """The invalidator's region; the watchdog looks in this region's Redis."""
    workload: str = "zipf"


@dataclass(frozen=True)
class WatchedDrain:
    """One drain of the figure."""

    variant: str
    drained: Drained
    lost_purges: int
    """The set's generation keys missing in Redis after the drain (must be 0)."""
    watchdog_cpu_s: float | None = None
    sampled: int = 0
    outcomes: dict[str, int] | None = None
    """The watchdog's events by outcome (with the watchdog only)."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def watchdog_process(
    params: WatchdogParams,
    *,
    group_prefix: str,
    port: int,
    deadline_s: float,
    log_dir: Path,
) -> BenchProcess:
    """`python -m invalidator watch` on the example catalogue, looking in `params.region`'s
    Redis only, its group `<group_prefix>-watchdog`, its metrics on `port`.

    deadline_s: its deadline: the whole drain's (a backlog drained is not a latency figure:
        no purge of it may be judged late, let alone missing).
    """
    # The region's entry of the environment's INVALIDATOR_REGIONS as it is: its credentials
    # too, which a dump of the settings would mask.
    regions = json.loads(os.environ.get("INVALIDATOR_REGIONS", "{}"))
    if params.region not in regions:
        raise SettingsError(f"INVALIDATOR_REGIONS names no region {params.region!r}")
    return BenchProcess(
        "watchdog",
        [sys.executable, "-m", "invalidator", "watch"],
        env={
            "INVALIDATOR_CATALOGUE": EXAMPLE_CATALOGUE,
            "INVALIDATOR_GROUP_PREFIX": group_prefix,
            "INVALIDATOR_REGIONS": json.dumps({params.region: regions[params.region]}),
            "INVALIDATOR_WATCH__SAMPLE_EVERY": str(params.sample_every),
            "INVALIDATOR_WATCH__METRICS_PORT": str(port),
            "INVALIDATOR_WATCH__DEADLINE_S": str(deadline_s),
        },
        log_path=log_dir / "watchdog.log",
    )


async def _http_get(port: int, path: str) -> tuple[int, str]:
    """GET `path` from 127.0.0.1:`port`: (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        await writer.drain()
        response = (await asyncio.wait_for(reader.read(), timeout=10)).decode()
    finally:
        writer.close()
    head, _, body = response.partition("\r\n\r\n")
    return int(head.split(" ", 2)[1]), body


async def _ready(process: BenchProcess, port: int) -> None:
    """Wait until the watchdog's /readyz answers 200 (its group has its partitions)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        process.check_running()
        try:
            if (await _http_get(port, "/readyz"))[0] == 200:
                return
        except OSError:
            pass  # not serving yet
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"the watchdog was not ready within {READY_TIMEOUT_S:.0f} s")


def _watch_figures(metrics: str) -> tuple[int, int, float, dict[str, int]]:
    """(records told of, sampled, pending, events by outcome) from the watchdog's /metrics."""
    told, sampled, pending = 0, 0, 0.0
    outcomes: dict[str, int] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "invalidator_watchdog_records_total":
                told += int(sample.value)
                sampled += int(sample.value) if sample.labels["sampled"] == "true" else 0
            elif sample.name == "invalidator_watchdog_records_skipped_total":
                told += int(sample.value)
            elif sample.name == "invalidator_watchdog_events_pending":
                pending = sample.value
            elif sample.name == "invalidator_watchdog_events_total":
                outcome = sample.labels["outcome"]
                outcomes[outcome] = outcomes.get(outcome, 0) + int(sample.value)
    return told, sampled, pending, outcomes


async def _all_judged(
    process: BenchProcess, port: int, events: int, timeout_s: float
) -> tuple[int, dict[str, int]]:
    """Wait until the watchdog was told of `events` records and has nothing pending; (sampled,
    events by outcome)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        process.check_running()
        told, sampled, pending, outcomes = _watch_figures((await _http_get(port, "/metrics"))[1])
        if told >= events and pending == 0:
            return sampled, outcomes
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"the watchdog did not judge {events} records within {timeout_s:.0f} s")


async def _produce(
    settings: InvalidatorSettings, count: int, prefix: str, params: WatchdogParams
) -> tuple[set[str], dict[TopicPartition, int], dict[TopicPartition, int]]:
    """Commit the drain's groups at the log end, produce its set; (its generation keys, starts,
    ends)."""
    picker = CompanyPicker(params.workload, run_id=prefix)
    records = order_records(picker, count, run_id=prefix, tag="w")
    topics = CATALOGUE.topics()
    for group_id in (f"{prefix}.{params.region}", f"{prefix}-watchdog"):
        await start_at_log_end(settings.kafka, group_id, topics)
    starts = await end_offsets(settings.kafka, topics)
    await produce_all(settings.kafka, records)
    ends = await end_offsets(settings.kafka, topics)
    if sum(ends[tp] - starts[tp] for tp in ends) != count:
        raise RuntimeError(
            f"more than the {count} records produced arrived on {topics}: something else "
            "publishes to this broker; use a stack of your own"
        )
    return generation_keys(records), starts, ends


async def _watched_drain(
    settings: InvalidatorSettings,
    params: WatchdogParams,
    variant: str,
    *,
    prefix: str,
    log_dir: Path,
) -> WatchedDrain:
    """Produce a set and drain it, with the watchdog beside the invalidator or not."""
    keys, starts, ends = await _produce(settings, params.events, prefix, params)
    timeout_s = max(60.0, params.events / SLOWEST_EVENTS_PER_S)
    invalidator = invalidator_process(params.region, group_prefix=prefix, log_dir=log_dir)
    group_id = f"{prefix}.{params.region}"
    if variant == "without":
        async with running([invalidator]):
            drained = await wait_drained(
                settings.kafka, group_id, starts=starts, ends=ends, processes=[invalidator],
                started_at=time.monotonic(), timeout_s=timeout_s,
            )  # fmt: skip
        watched: tuple[float | None, int, dict[str, int] | None] = (None, 0, None)
    else:
        port = _free_port()
        watchdog = watchdog_process(
            params, group_prefix=prefix, port=port, deadline_s=timeout_s,
            log_dir=log_dir,
        )  # fmt: skip
        async with running([watchdog]):
            await _ready(watchdog, port)
            cpu_before = cpu_seconds(watchdog.pid)
            async with running([invalidator]):
                drained = await wait_drained(
                    settings.kafka, group_id, starts=starts, ends=ends, processes=[invalidator],
                    started_at=time.monotonic(), timeout_s=timeout_s,
                )  # fmt: skip
            sampled, outcomes = await _all_judged(watchdog, port, params.events, timeout_s)
            cpu_after = cpu_seconds(watchdog.pid)
        cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
        watched = (cpu, sampled, outcomes)
    lost = await lost_purges(settings.targets(params.region)[0], keys)
    result = WatchedDrain(variant, drained, lost, *watched)
    print(
        f"  {variant} watchdog: {drained.events_per_s:,.0f} events/s, {lost} purges lost"
        + (
            f"; watchdog CPU {1000 * result.watchdog_cpu_s / result.sampled:.3f} ms per sampled "
            f"event ({result.sampled} sampled, {result.outcomes})"
            if result.watchdog_cpu_s is not None and result.sampled
            else ""
        ),
        flush=True,
    )
    return result


async def run_watchdog(
    settings: InvalidatorSettings, params: WatchdogParams, *, run_id: str, log_dir: Path
) -> dict[str, Any]:
    """Drain `params.rounds` sets without and as many with the watchdog, alternating; the
    figures.

    settings: the endpoints.
    params: sizes and sampling.
    run_id: unique to the run (ids and group names).
    log_dir: where the processes' logs go.
    """
    print(
        f"[watchdog] {params.rounds} x 2 drains of {params.events:,} events, 1 in "
        f"{params.sample_every} sampled",
        flush=True,
    )
    drains: list[WatchedDrain] = []
    for round_ in range(params.rounds):
        order = VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]
        for variant in order:
            prefix = f"{run_id}-wd{round_}{variant}"
            drains.append(
                await _watched_drain(settings, params, variant, prefix=prefix, log_dir=log_dir)
            )
    return summary(drains)


def summary(drains: list[WatchedDrain]) -> dict[str, Any]:
    """The figure's results: each variant's drain rates and median, the drain with the watchdog
    as a share of the drain without (medians), the purges lost, the watchdog's CPU per sampled
    event and what it judged."""
    rates = {
        variant: [round(d.drained.events_per_s, 1) for d in drains if d.variant == variant]
        for variant in VARIANTS
    }
    medians = {variant: statistics.median(values) for variant, values in rates.items()}
    watched = [d for d in drains if d.variant == "with"]
    cpu = [d.watchdog_cpu_s for d in watched if d.watchdog_cpu_s is not None]
    sampled = sum(d.sampled for d in watched if d.watchdog_cpu_s is not None)
    outcomes: dict[str, int] = {}
    for drain in watched:
        for outcome, count in (drain.outcomes or {}).items():
            outcomes[outcome] = outcomes.get(outcome, 0) + count
    return {
        "drain_events_per_s": {
            variant: {"runs": rates[variant], "median": round(medians[variant], 1)}
            for variant in VARIANTS
        },
        "ratio_with_to_without": (
            round(medians["with"] / medians["without"], 3) if medians["without"] else None
        ),
        "lost_purges": sum(d.lost_purges for d in drains),
        "watchdog": {
            "cpu_ms_per_sampled_event": round(1000 * sum(cpu) / sampled, 4) if sampled else None,
            "sampled": sum(d.sampled for d in watched),
            "outcomes": outcomes,
        },
    }
