"""The replica-acknowledgement figure: what `min_replicas_acked=1` costs a purge on `us`.

On the `us` Cluster (each master with one replica), `invalidator.purge.purge_on_target` purges
generation-strategy namespaces with and without a WAIT for one replica, in the same run,
alternating round by round so that both see the same machine: one namespace at a time (the
latency of a lone event's purge) and batches of `batch` namespaces (a drain's batch, one script
call and one WAIT per master). Ratio: with WAIT to without.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from contracts.namespaces import BoundNamespace, Namespace
from invalidator.planner import grouped
from invalidator.purge import purge_on_target
from invalidator.replication import ReplicaAck
from invalidator.settings import InvalidatorSettings
from producers import RedisClient, connect_redis

REGION = "us"
ACK = ReplicaAck(replicas=1, timeout_ms=1000)

BENCH = Namespace(
    name="bench_replica_ack",
    template="bench:{item}:replica_ack",
    owner="bench",
    description="Generation-strategy namespaces for the replica-acknowledgement bench.",
    purged_by=(),
)


@dataclass(frozen=True)
class ReplicaAckParams:
    """What the replica-acknowledgement figure runs."""

    single_purges: int = 2_000
    batch: int = 2_000
    batches: int = 50
    rounds: int = 10


async def _timed(
    client: RedisClient, plans: list[list[BoundNamespace]], ack: ReplicaAck | None
) -> list[float]:
    timings = []
    for plan in plans:
        by_namespace = grouped(plan)
        started = time.perf_counter()
        await purge_on_target(client, by_namespace, ack=ack)
        timings.append(time.perf_counter() - started)
    return timings


def _summary(timings: list[float], namespaces_per_purge: int) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(timings) * 1000, 4),
        "p99_ms": round(statistics.quantiles(timings, n=100)[98] * 1000, 4),
        "namespaces_per_s": round(namespaces_per_purge * len(timings) / sum(timings)),
        "count": len(timings),
    }


async def _compare(
    client: RedisClient, plans: list[list[BoundNamespace]], rounds: int
) -> dict[str, Any]:
    """Alternate rounds with and without WAIT over the same plans; both summaries and ratios."""
    per_round = max(1, len(plans) // rounds)
    timings: dict[str, list[float]] = {"without": [], "with_wait": []}
    for start in range(0, len(plans), per_round):
        chunk = plans[start : start + per_round]
        timings["without"] += await _timed(client, chunk, None)
        timings["with_wait"] += await _timed(client, chunk, ACK)
    size = len(plans[0])
    without, with_wait = _summary(timings["without"], size), _summary(timings["with_wait"], size)
    return {
        "without": without,
        "with_wait": with_wait,
        "p50_ratio": round(with_wait["p50_ms"] / without["p50_ms"], 2),
        "throughput_ratio": round(with_wait["namespaces_per_s"] / without["namespaces_per_s"], 2),
    }


async def run_replica_ack(
    settings: InvalidatorSettings, params: ReplicaAckParams, *, run_id: str
) -> dict[str, Any]:
    """Purge on the us target with and without WAIT for one replica; results and ratios.

    settings: the endpoints (the us region must be a Cluster whose masters have replicas).
    params: repetitions and batch size.
    run_id: unique to the run (the bench's keys).
    """
    target = settings.targets(REGION)[0].model_copy(update={"min_replicas_acked": 0})
    client = connect_redis(target)
    try:
        singles = [[BENCH.bind(item=f"{run_id}-s{n}")] for n in range(params.single_purges)]
        batches = [
            [BENCH.bind(item=f"{run_id}-b{b}-{n}") for n in range(params.batch)]
            for b in range(params.batches)
        ]
        results: dict[str, Any] = {
            "target": target.name,
            "replicas": ACK.replicas,
            "single": await _compare(client, singles, params.rounds),
            "batch": await _compare(client, batches, params.rounds),
        }
        for kind in ("single", "batch"):
            figures = results[kind]
            print(
                f"  {kind}: p50 {figures['without']['p50_ms']:.3f} -> "
                f"{figures['with_wait']['p50_ms']:.3f} ms ({figures['p50_ratio']}x), "
                f"{figures['without']['namespaces_per_s']:,} -> "
                f"{figures['with_wait']['namespaces_per_s']:,} namespaces/s "
                f"({figures['throughput_ratio']}x)",
                flush=True,
            )
        return results
    finally:
        keys = [f"{{{ns.key}}}:gen" for plan in singles + batches for ns in plan]
        for start in range(0, len(keys), 1000):
            pipeline = client.pipeline(transaction=False)
            for key in keys[start : start + 1000]:
                pipeline.execute_command("UNLINK", key)
            await pipeline.execute()
        await client.aclose()
