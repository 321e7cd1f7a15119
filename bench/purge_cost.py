"""The purge-cost figure: ms per purge of one namespace by strategy, as the keyspace grows.

Each region's Redis is filled, in the real layout, with `size` entries of generation-strategy
namespaces (100 entries each, written by a server-side script per namespace), plus a few
namespaces of the index strategy (100 indexed entries each) and of the scan strategy (legacy
keys `<key>:page:<n>` without hash tag). Then `invalidator.purge.purge_namespaces` purges one
namespace at a time. The limit is one raw `SET` round trip measured in the same run.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from contracts.layout import generation_key, index_key, new_generation
from contracts.namespaces import BoundNamespace, Namespace, PurgeStrategy
from invalidator.purge import purge_namespaces
from invalidator.settings import InvalidatorSettings
from producers import RedisClient, connect_redis

ENTRIES_PER_NAMESPACE = 100
SCAN_KEYS_PER_NAMESPACE = 10
_PIPELINE = 500
_ENTRY_TTL_MS = 3_600_000

FILL = """
local prefix, value, count, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
for i = 1, count do
  local key = prefix .. i
  redis.call('SET', key, value, 'PX', ttl)
  if ARGV[5] == '1' then redis.call('SADD', KEYS[2], key) end
end
redis.call('SET', KEYS[1], ARGV[6], 'PX', ttl)
return count
"""
"""Fills one namespace's entries (and its index, when asked) inside its slot."""

EMPTY = """
local prefix, count = ARGV[1], tonumber(ARGV[2])
for i = 1, count do redis.call('UNLINK', prefix .. i) end
redis.call('UNLINK', KEYS[1], KEYS[2])
return count
"""
"""Removes what FILL wrote."""


def _namespace(strategy: PurgeStrategy) -> Namespace:
    return Namespace(
        name=f"bench_{strategy.value}",
        template=f"bench:{{item}}:{strategy.value}",
        owner="bench",
        description=f"Entries purged by the {strategy.value} strategy, for the purge-cost bench.",
        purged_by=(),
        strategy=strategy,
    )


BULK = _namespace(PurgeStrategy.GENERATION)
INDEXED = _namespace(PurgeStrategy.INDEX)
LEGACY = _namespace(PurgeStrategy.SCAN)


@dataclass(frozen=True)
class PurgeCostParams:
    """What the purge-cost figure runs."""

    sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    generation_purges: int = 300
    index_purges: int = 50
    scan_purges: int = 5
    set_round_trips: int = 500


async def _fill(client: RedisClient, namespaces: list[BoundNamespace], *, indexed: bool) -> None:
    generation = new_generation()
    value = generation + b"\n1\n" + b"x" * 64
    for start in range(0, len(namespaces), _PIPELINE):
        pipeline = client.pipeline(transaction=False)
        for namespace in namespaces[start : start + _PIPELINE]:
            prefix = "{" + namespace.key + "}:e:page"
            pipeline.eval(
                FILL, 2, generation_key(namespace), index_key(namespace), prefix, value,
                ENTRIES_PER_NAMESPACE, _ENTRY_TTL_MS, "1" if indexed else "0", generation,
            )  # fmt: skip
        await pipeline.execute()


async def _empty(client: RedisClient, namespaces: list[BoundNamespace]) -> None:
    for start in range(0, len(namespaces), _PIPELINE):
        pipeline = client.pipeline(transaction=False)
        for namespace in namespaces[start : start + _PIPELINE]:
            prefix = "{" + namespace.key + "}:e:page"
            pipeline.eval(
                EMPTY, 2, generation_key(namespace), index_key(namespace), prefix,
                ENTRIES_PER_NAMESPACE,
            )  # fmt: skip
        await pipeline.execute()


async def _legacy_keys(client: RedisClient, namespaces: list[BoundNamespace]) -> list[str]:
    keys = [f"{ns.key}:page:{n}" for ns in namespaces for n in range(SCAN_KEYS_PER_NAMESPACE)]
    pipeline = client.pipeline(transaction=False)
    for key in keys:
        pipeline.set(key, b"legacy", px=_ENTRY_TTL_MS)
    await pipeline.execute()
    return keys


async def _timed_purges(client: RedisClient, namespaces: list[BoundNamespace]) -> list[float]:
    timings = []
    for namespace in namespaces:
        started = time.perf_counter()
        await purge_namespaces(client, [namespace])
        timings.append(time.perf_counter() - started)
    return timings


async def _set_round_trip(client: RedisClient, count: int, run_id: str) -> list[float]:
    timings = []
    key = "{" + f"bench:{run_id}:set" + "}:probe"
    for n in range(count):
        started = time.perf_counter()
        await client.set(key, n)
        timings.append(time.perf_counter() - started)
    await client.delete(key)
    return timings


def _ms(timings: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(timings) * 1000, 4),
        "mean_ms": round(statistics.fmean(timings) * 1000, 4),
        "count": len(timings),
    }


async def _region(
    client: RedisClient, params: PurgeCostParams, run_id: str
) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    filled: list[BoundNamespace] = []
    indexed = [
        INDEXED.bind(item=f"{run_id}-i{n}") for n in range(params.index_purges * len(params.sizes))
    ]
    legacy = [
        LEGACY.bind(item=f"{run_id}-l{n}") for n in range(params.scan_purges * len(params.sizes))
    ]
    legacy_keys = await _legacy_keys(client, legacy)
    try:
        for step, size in enumerate(sorted(params.sizes)):
            wanted = size // ENTRIES_PER_NAMESPACE
            more = [BULK.bind(item=f"{run_id}-g{n}") for n in range(len(filled), wanted)]
            started = time.perf_counter()
            await _fill(client, more, indexed=False)
            filled += more
            fill_s = time.perf_counter() - started
            batch = slice(step * params.index_purges, (step + 1) * params.index_purges)
            await _fill(client, indexed[batch], indexed=True)
            scans = legacy[step * params.scan_purges : (step + 1) * params.scan_purges]
            set_ms = _ms(await _set_round_trip(client, params.set_round_trips, run_id))
            strategies = {
                "generation": _ms(await _timed_purges(client, filled[: params.generation_purges])),
                "index": _ms(await _timed_purges(client, indexed[batch])),
                "scan": _ms(await _timed_purges(client, scans)),
            }
            for figures in strategies.values():
                figures["ratio_to_set"] = round(figures["p50_ms"] / set_ms["p50_ms"], 2)
            results[str(size)] = {
                "dbsize": int(await client.dbsize()),
                "fill_seconds": round(fill_s, 2),
                "set_round_trip": set_ms,
                **strategies,
            }
            print(
                f"  {size:>9,} entries: SET {set_ms['p50_ms']:.3f} ms | "
                + " | ".join(f"{k} {v['p50_ms']:.3f} ms" for k, v in strategies.items()),
                flush=True,
            )
    finally:
        await _empty(client, filled + indexed)
        pipeline = client.pipeline(transaction=False)
        for key in legacy_keys:
            pipeline.execute_command("UNLINK", key)
        await pipeline.execute()
    return results


async def run_purge_cost(
    settings: InvalidatorSettings, params: PurgeCostParams, *, run_id: str
) -> dict[str, Any]:
    """Fill, purge and empty each region's first target; the results per region and size.

    settings: the endpoints.
    params: sizes and repetitions.
    run_id: unique to the run (the bench's keys).
    """
    results: dict[str, Any] = {}
    for region in sorted(settings.regions):
        print(f"[purge cost] {region}", flush=True)
        client = connect_redis(settings.targets(region)[0])
        try:
            results[region] = await _region(client, params, run_id)
        finally:
            await client.aclose()
    return results
