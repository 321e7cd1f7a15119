"""The scale-out figure: 1, 2, 3 `invalidator run --region eu` processes in one group.

For each count, the processes start in a fresh group committed at the log end and the bench
waits until the group is Stable with every member assigned; then N Zipf events are produced and
the group drains them (timed from the first commit seen to the last). Starting first keeps the
group's join and rebalance (seconds, with aiokafka's 3 s heartbeat) out of the figure; the
producer is several times faster than the drain, so it does not bound it (its time is recorded).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.lost_purges import unlink_keys
from bench.machine import cpu_busy_since, cpu_times
from bench.orders_load import CompanyPicker, generation_keys, order_records, produce_all
from bench.processes import invalidator_process, running
from bench.progress import wait_drained, wait_stable
from contracts.example_orders import CATALOGUE
from invalidator.operators import end_offsets, start_at_log_end
from invalidator.settings import InvalidatorSettings
from producers import connect_redis

JOIN_TIMEOUT_S = 90.0
SLOWEST_EVENTS_PER_S = 500.0


@dataclass(frozen=True)
class ScaleOutParams:
    """What the scale-out figure runs."""

    events: int = 600_000
    processes: tuple[int, ...] = (1, 2, 3)


async def run_scale_out(
    settings: InvalidatorSettings, params: ScaleOutParams, *, run_id: str, log_dir: Path
) -> dict[str, Any]:
    """Drain N events with each process count; events/s and the ratio to one process.

    settings: the endpoints.
    params: the event count and the process counts.
    run_id: unique to the run.
    log_dir: where the processes' logs go.
    """
    results: dict[str, Any] = {}
    topics = CATALOGUE.topics()
    for count in params.processes:
        prefix = f"{run_id}-x{count}"
        group_id = f"{prefix}.eu"
        records = order_records(
            CompanyPicker("zipf", run_id=prefix), params.events, run_id=prefix, tag="s"
        )
        await start_at_log_end(settings.kafka, group_id, topics)
        starts = await end_offsets(settings.kafka, topics)
        processes = [
            invalidator_process(
                "eu", group_prefix=prefix, log_dir=log_dir, name=f"invalidator-eu-x{count}-{n}"
            )
            for n in range(count)
        ]
        # Produced first: the drain is then not capped by the producer (which is about as fast
        # as one invalidator here). The members join while the first drains; the timing starts
        # at the first commit once all of them are in the group (wait_drained's `members`).
        produced_at = time.monotonic()
        await produce_all(settings.kafka, records)
        produce_s = time.monotonic() - produced_at
        ends = await end_offsets(settings.kafka, topics)
        async with running(processes):
            started_at = time.monotonic()
            cpu_at_start = cpu_times()
            join_s = await wait_stable(
                settings.kafka, group_id, processes, members=count, timeout_s=JOIN_TIMEOUT_S
            )
            drained = await wait_drained(
                settings.kafka, group_id, starts=starts, ends=ends, processes=processes,
                started_at=started_at, members=count,
                timeout_s=JOIN_TIMEOUT_S + params.events / SLOWEST_EVENTS_PER_S,
            )  # fmt: skip
            cpu_busy = cpu_busy_since(cpu_at_start)
        client = connect_redis(settings.targets("eu")[0])
        try:
            await unlink_keys(client, generation_keys(records))
        finally:
            await client.aclose()
        results[str(count)] = {
            **asdict(drained),
            "events_per_s": round(drained.events_per_s, 1),
            "join_s": round(join_s, 2),
            "produce_s": round(produce_s, 2),
            "machine_cpu_busy": cpu_busy,
        }
        print(
            f"[scale-out] {count} process(es): {drained.events_per_s:,.0f} events/s "
            f"(joined in {join_s:.1f} s, produced in {produce_s:.1f} s, "
            f"machine CPU {cpu_busy:.0%} busy)",
            flush=True,
        )
    one = results.get("1", {}).get("events_per_s")
    for figures in results.values():
        if one:
            figures["ratio_to_one"] = round(figures["events_per_s"] / one, 3)
    return results
