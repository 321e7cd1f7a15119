"""The read-path figure: `CacheClient.fetch` against bare redis-py reads of the same keys.

On each region's Redis (eu standalone, us Cluster), with 1 and 64 concurrent callers, each caller
reading a namespace of its own (so that on the Cluster the callers spread over the masters):
- hit: `fetch` of a valid entry, against a bare `MGET` of the same two keys (the generation and
  the entry: the same round trip without the checks) and a bare `GET` of the entry alone (what
  a naive cache does);
- miss with its fill: `fetch` of an entry not there yet (its namespace's generation exists):
  the read, the loader (which returns at once) and the conditional fill, against a bare `GET` of
  a fresh key and a `SET` of it.
The bare variants run on a client of their own, built from the same target (pool, timeouts).
The variants alternate within each round, the order rotating from round to round; rounds are
short and many, so that every variant sees the same moments of a shared machine. Per round:
calls/s, p50/p99 of the per-call latency, and this process's CPU time per call (steadier than a
rate where other work shares the cores). The figure is the median over rounds; each ratio is the
median of the rounds' ratios of the system to the bare variant run beside it.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from contracts.layout import entry_key, generation_key
from contracts.namespaces import Namespace
from contracts.redis_clients import redis_client
from invalidator.settings import InvalidatorSettings
from producers import CacheClient, RedisClient, Source, connect_redis

REGIONS = ("eu", "us")
ENTRY = "page:1"
VALUE = b'{"orders":["o-1","o-2","o-3"],"total":3}'
TTL = timedelta(minutes=10)
"""The bench's entries expire on their own should the run be interrupted before its clean-up."""

BENCH = Namespace(
    name="bench_read_path",
    template="bench:{item}:read_path",
    owner="bench",
    description="Namespaces read by the read-path bench.",
    purged_by=(),
    ttl=TTL,
)

Call = Callable[[int, int, int], Awaitable[object]]
"""One read in round `r` (0: the warm-up) by caller `c` (its namespace), its `n`-th call."""


@dataclass(frozen=True)
class ReadPathParams:
    """What the read-path figure runs."""

    calls: int = 1_000
    """Calls per variant, round and concurrency (split among the callers)."""
    rounds: int = 41
    miss_calls: int = 500
    """Calls per miss variant, round and concurrency."""
    concurrency: tuple[int, ...] = (1, 64)


async def _round(call: Call, number: int, callers: int, calls: int) -> dict[str, float]:
    """Round `number`: `calls` calls split among `callers` concurrent callers; calls/s and
    latency quantiles."""
    per_caller = max(1, calls // callers)
    latencies: list[float] = []

    async def caller(index: int) -> None:
        timings = []
        for n in range(per_caller):
            started = time.perf_counter()
            await call(number, index, n)
            timings.append(time.perf_counter() - started)
        latencies.extend(timings)

    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller(index) for index in range(callers)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    latencies.sort()
    return {
        "calls_per_s": len(latencies) / elapsed,
        "cpu_us_per_call": cpu / len(latencies) * 1e6,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


async def _compare(
    variants: dict[str, Call], system: str, *, callers: int, calls: int, rounds: int
) -> dict[str, Any]:
    """Every variant once per round, the order rotating; medians, and the system's ratios to
    each bare variant (medians of the per-round ratios)."""
    names = list(variants)
    for name in names:  # warm-up: connections made, scripts loaded, slot maps read
        await _round(variants[name], 0, callers, min(calls, 200 * callers))
    per_round: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for number in range(1, rounds + 1):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            per_round[name].append(await _round(variants[name], number, callers, calls))
    results: dict[str, Any] = {
        name: {
            metric: round(statistics.median(r[metric] for r in rounds_of), 4)
            for metric in ("calls_per_s", "p50_ms", "p99_ms", "cpu_us_per_call")
        }
        for name, rounds_of in per_round.items()
    }
    ratios: dict[str, float] = {}
    for bare in names:
        if bare == system:
            continue
        pairs = list(zip(per_round[system], per_round[bare], strict=True))
        ratios[f"throughput_to_{bare}"] = round(
            statistics.median(s["calls_per_s"] / b["calls_per_s"] for s, b in pairs), 3
        )
        ratios[f"p50_to_{bare}"] = round(
            statistics.median(s["p50_ms"] / b["p50_ms"] for s, b in pairs), 3
        )
        ratios[f"cpu_to_{bare}"] = round(
            statistics.median(s["cpu_us_per_call"] / b["cpu_us_per_call"] for s, b in pairs), 3
        )
    results["ratios"] = ratios
    return results


class _Region:
    """The keys, the cache client and the bare client of one region for one run."""

    def __init__(self, system: RedisClient, bare: RedisClient, run_id: str, callers: int) -> None:
        self.system = system
        self.bare = bare
        self.cache = CacheClient(system)
        self.namespaces = [BENCH.bind(item=f"{run_id}-{c}") for c in range(callers)]
        self.entries = [entry_key(ns, ENTRY) for ns in self.namespaces]
        self.pairs = [(generation_key(ns), entry_key(ns, ENTRY)) for ns in self.namespaces]
        self.miss_prefix = f"{run_id}-miss"
        self.written: list[str] = [generation_key(ns) for ns in self.namespaces] + self.entries

    async def load(self) -> bytes:
        """The loader: the source of truth, answering at once."""
        return VALUE

    async def fill(self) -> None:
        """Every namespace's entry filled through the client (the hits' state)."""
        for namespace in self.namespaces:
            fetched = await self.cache.fetch(namespace, ENTRY, self.load)
            assert fetched.source is Source.LOADED, fetched

    def hit_variants(self) -> dict[str, Call]:
        """fetch, bare MGET, bare GET."""
        cache, bare, namespaces, pairs, entries = (
            self.cache, self.bare, self.namespaces, self.pairs, self.entries,
        )  # fmt: skip

        async def fetch(_: int, caller: int, __: int) -> object:
            fetched = await cache.fetch(namespaces[caller], ENTRY, self.load)
            if fetched.source is not Source.HIT:
                raise AssertionError(f"a read of a filled entry was a {fetched.source}")
            return fetched

        async def mget(_: int, caller: int, __: int) -> object:
            return await bare.mget(*pairs[caller])

        async def get(_: int, caller: int, __: int) -> object:
            return await bare.get(entries[caller])

        return {"fetch": fetch, "mget": mget, "get": get}

    def miss_key(self, number: int, caller: int, n: int) -> str:
        """The bare variant's key of a miss: new for every call."""
        return f"{{{self.miss_prefix}-{caller}}}:m{number}-{n}"

    def miss_variants(self) -> dict[str, Call]:
        """fetch of a new entry (read, load, fill), bare GET + SET of a new key."""
        cache, bare, namespaces = self.cache, self.bare, self.namespaces
        ttl_ms = int(TTL.total_seconds() * 1000)

        async def fetch(number: int, caller: int, n: int) -> object:
            fetched = await cache.fetch(namespaces[caller], f"m{number}-{n}", self.load)
            if fetched.source is not Source.LOADED:
                raise AssertionError(f"a read of a new entry was a {fetched.source}")
            return fetched

        async def get_set(number: int, caller: int, n: int) -> object:
            key = self.miss_key(number, caller, n)
            if await bare.get(key) is None:
                await bare.set(key, VALUE, px=ttl_ms)
            return None

        return {"fetch": fetch, "get_set": get_set}

    def miss_keys(self, calls: int, rounds: int) -> list[str]:
        """Every key the miss variants may have written (round 0 is the warm-up)."""
        per_caller = max(1, calls // len(self.namespaces))
        return [
            key
            for number in range(rounds + 1)
            for caller, namespace in enumerate(self.namespaces)
            for n in range(per_caller)
            for key in (entry_key(namespace, f"m{number}-{n}"), self.miss_key(number, caller, n))
        ]


async def _region_figures(
    settings: InvalidatorSettings, region: str, params: ReadPathParams, *, run_id: str
) -> dict[str, Any]:
    target = settings.targets(region)[0]
    system, bare = connect_redis(target), redis_client(target)
    results: dict[str, Any] = {"target": target.name, "cluster": target.cluster}
    keys: list[str] = []
    try:
        if target.cluster:
            await bare.initialize()  # the slot map, before concurrent use
        for callers in params.concurrency:
            state = _Region(system, bare, f"{run_id}-{region}-{callers}", callers)
            keys += state.written
            await state.fill()
            hit = await _compare(
                state.hit_variants(), "fetch", callers=callers, calls=params.calls,
                rounds=params.rounds,
            )  # fmt: skip
            keys += state.miss_keys(params.miss_calls, params.rounds)
            miss = await _compare(
                state.miss_variants(), "fetch", callers=callers, calls=params.miss_calls,
                rounds=params.rounds,
            )  # fmt: skip
            results.setdefault("hit", {})[str(callers)] = hit
            results.setdefault("miss", {})[str(callers)] = miss
            _print(region, callers, hit, miss)
        return results
    finally:
        await _unlink(system, keys)
        await system.aclose()
        await bare.aclose()


async def _unlink(client: RedisClient, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):
        pipeline = client.pipeline(transaction=False)
        for key in keys[start : start + 1000]:
            pipeline.execute_command("UNLINK", key)
        await pipeline.execute()


def _print(region: str, callers: int, hit: dict[str, Any], miss: dict[str, Any]) -> None:
    print(
        f"  {region} x{callers}: hit {hit['fetch']['calls_per_s']:,.0f} calls/s, p50 "
        f"{hit['fetch']['p50_ms']:.3f} ms; vs MGET {hit['ratios']['throughput_to_mget']}x / "
        f"p50 {hit['ratios']['p50_to_mget']}x / CPU {hit['ratios']['cpu_to_mget']}x; vs GET "
        f"{hit['ratios']['throughput_to_get']}x / "
        f"p50 {hit['ratios']['p50_to_get']}x; miss+fill vs GET+SET "
        f"{miss['ratios']['throughput_to_get_set']}x / p50 {miss['ratios']['p50_to_get_set']}x",
        flush=True,
    )


async def run_read_path(
    settings: InvalidatorSettings, params: ReadPathParams, *, run_id: str
) -> dict[str, Any]:
    """`CacheClient.fetch` hits and misses against bare reads, on every region; figures, ratios.

    settings: the endpoints (eu standalone, us Cluster).
    params: calls, rounds and concurrencies.
    run_id: unique to the run (the bench's keys).
    """
    return {
        region: await _region_figures(settings, region, params, run_id=run_id) for region in REGIONS
    }
