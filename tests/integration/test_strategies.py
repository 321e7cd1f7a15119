"""Every purge strategy and fill policy on real Redis, standalone (eu) and Cluster (us)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from datetime import timedelta
from typing import cast

import pytest
from redis.asyncio import RedisCluster

from contracts import ContractError, Namespace, PurgeRule, PurgeStrategy
from contracts.example_orders import OrderCreated
from contracts.layout import entry_key, fill_lock_key, hold_off_key, index_key
from invalidator.purge import escape_glob, purge_namespaces
from producers import CacheClient, RedisClient
from producers.cache import Source
from tests.integration.invalidators import REGIONS
from tests.waiting import wait_until

pytestmark = pytest.mark.parametrize("region", REGIONS)


def _namespace(template: str, **options: object) -> Namespace:
    return Namespace(
        name="strategy_test",
        template=template,
        owner="tests",
        description="a namespace for strategy tests",
        purged_by=(PurgeRule(OrderCreated, {"id": "payload.order_id"}),),
        **options,  # type: ignore[arg-type]
    )


def _id() -> str:
    return uuid.uuid4().hex[:12]


async def test_index_unlinks_every_entry_and_refuses_racing_fills(
    region: str, caches: dict[str, CacheClient], redis_clients: dict[str, RedisClient]
) -> None:
    bound = _namespace("indexed:{id}", strategy=PurgeStrategy.INDEX).bind(id=_id())
    cache, redis = caches[region], redis_clients[region]
    for page in range(5):
        read = await cache.read(bound, f"page:{page}")
        assert await cache.store(bound, f"page:{page}", b"v1", generation=read.generation)
    assert await redis.scard(index_key(bound)) == 5
    racing = await cache.read(bound, "page:9")

    cost = await purge_namespaces(redis, [bound])

    assert cost.keys_unlinked == 5
    assert sum([await redis.exists(entry_key(bound, f"page:{p}")) for p in range(5)]) == 0
    assert await redis.exists(index_key(bound)) == 0
    assert not await cache.store(bound, "page:9", b"stale", generation=racing.generation)
    again = await purge_namespaces(redis, [bound])
    assert again.keys_unlinked == 0  # idempotent


async def test_exact_unlinks_the_legacy_key_it_renders(
    region: str, redis_clients: dict[str, RedisClient], caches: dict[str, CacheClient]
) -> None:
    bound = _namespace("legacy:{id}:detail", strategy=PurgeStrategy.EXACT).bind(id=_id())
    redis = redis_clients[region]
    await redis.set(bound.key, b"written by a legacy service")
    assert (await purge_namespaces(redis, [bound])).keys_unlinked == 1
    assert await redis.exists(bound.key) == 0
    assert (await purge_namespaces(redis, [bound])).keys_unlinked == 0
    with pytest.raises(ContractError, match="legacy keys"):
        await caches[region].read(bound, "page:1")


async def test_scan_unlinks_the_prefix_on_every_master_and_nothing_else(
    region: str, redis_clients: dict[str, RedisClient], caplog: pytest.LogCaptureFixture
) -> None:
    ident = _id()
    bound = _namespace("catalog:{id}", strategy=PurgeStrategy.SCAN).bind(id=ident)
    redis = redis_clients[region]
    doomed = [bound.key, *(f"{bound.key}:page:{n}" for n in range(200))]
    decoys = [f"catalog:{ident}x:page:1", f"catalog:{ident}-2:page:1", f"other:{ident}:page:1"]
    for key in doomed + decoys:
        await redis.set(key, b"legacy")

    with caplog.at_level(logging.INFO, logger="invalidator.purge"):
        cost = await purge_namespaces(redis, [bound])

    assert cost.keys_unlinked == len(doomed)
    assert sum([await redis.exists(key) for key in doomed]) == 0
    assert sum([await redis.exists(key) for key in decoys]) == len(decoys)
    masters = 3 if region == "us" else 1
    assert f"on {masters} master(s)" in caplog.text and "O(keyspace)" in caplog.text
    assert (await purge_namespaces(redis, [bound])).keys_unlinked == 0
    for key in decoys:
        await redis.delete(key)


async def test_fill_hold_off_refuses_fills_until_it_expires(
    region: str, caches: dict[str, CacheClient], redis_clients: dict[str, RedisClient]
) -> None:
    bound = _namespace("held:{id}", fill_hold_off=timedelta(milliseconds=300)).bind(id=_id())
    cache, redis = caches[region], redis_clients[region]
    await purge_namespaces(redis, [bound])
    after_purge = await cache.read(bound, "page:1")  # a reader of a lagging replica
    assert not await cache.store(bound, "page:1", b"maybe-old", generation=after_purge.generation)

    async def hold_off_over() -> bool:
        return await redis.exists(hold_off_key(bound)) == 0

    await wait_until(hold_off_over, within=5, what="the hold-off to expire")
    assert await cache.store(bound, "page:1", b"fresh", generation=after_purge.generation)
    assert await cache.get(bound, "page:1") == b"fresh"


async def test_single_flight_loads_once_across_callers_and_clients(
    region: str, redis_clients: dict[str, RedisClient]
) -> None:
    bound = _namespace("hot:{id}", single_flight=True).bind(id=_id())
    # Two clients stand for two service processes sharing the Redis.
    processes = [CacheClient(redis_clients[region]), CacheClient(redis_clients[region])]
    loads = 0
    release = asyncio.Event()

    async def load() -> bytes:
        nonlocal loads
        loads += 1
        await release.wait()
        return b"computed once"

    fetches = [
        asyncio.create_task(processes[i % 2].fetch(bound, "page:1", load)) for i in range(100)
    ]

    async def one_loading() -> bool:
        return loads == 1

    await wait_until(one_loading, within=5, what="the first load to start")
    release.set()
    results = await asyncio.gather(*fetches)
    assert loads == 1
    assert {r.value for r in results} == {b"computed once"}
    assert [r.source for r in results].count(Source.LOADED) == 1
    assert await processes[0].get(bound, "page:1") == b"computed once"


async def test_stale_serving_gives_the_previous_value_while_one_caller_fills(
    region: str, redis_clients: dict[str, RedisClient]
) -> None:
    namespace = _namespace("page:{id}", single_flight=True, serve_stale_while_filling=True)
    bound = namespace.bind(id=_id())
    filler, reader = CacheClient(redis_clients[region]), CacheClient(redis_clients[region])
    await filler.get_or_fill(bound, "page:1", _const(b"v1"))
    await purge_namespaces(redis_clients[region], [bound])
    release = asyncio.Event()

    async def slow_v2() -> bytes:
        await release.wait()
        return b"v2"

    filling = asyncio.create_task(filler.fetch(bound, "page:1", slow_v2))

    async def lock_taken() -> bool:
        return bool(await redis_clients[region].exists(fill_lock_key(bound, "page:1")))

    await wait_until(lock_taken, within=5, what="the filler to take the fill lock")
    served = await reader.fetch(bound, "page:1", _const(b"must not load"))
    assert (served.value, served.stale) == (b"v1", True)
    release.set()
    assert (await filling).value == b"v2"
    assert await reader.get(bound, "page:1") == b"v2"


def _const(value: bytes):  # type: ignore[no-untyped-def]
    async def load() -> bytes:
        return value

    return load


def test_policies_need_the_client_layout(region: str) -> None:
    with pytest.raises(ContractError, match="legacy keys"):
        _namespace("x:{id}", strategy=PurgeStrategy.SCAN, single_flight=True)
    with pytest.raises(ContractError, match="needs single_flight"):
        _namespace("x:{id}", serve_stale_while_filling=True)
    assert dataclasses.replace(_namespace("x:{id}"), single_flight=True).single_flight


class _TakenOverBetweenCalls:
    """A Redis client on which the fill lock expires and another caller takes it right after
    any plain GET of it: what a non-atomic "GET, compare, DEL" release would then delete."""

    def __init__(self, redis: RedisClient, lock: str) -> None:
        self._redis = redis
        self._lock = lock
        self.taken_over = False

    def __getattr__(self, name: str) -> object:
        return getattr(self._redis, name)

    async def get(self, key: str) -> bytes | None:
        # redis-py types a reply as bytes or str; these clients do not decode responses.
        value = cast(bytes | None, await self._redis.get(key))
        if key == self._lock:
            await self._redis.set(key, b"another caller", px=5000)
            self.taken_over = True
        return value


async def test_releasing_the_fill_lock_never_deletes_another_callers_lock(
    region: str, redis_clients: dict[str, RedisClient]
) -> None:
    bound = _namespace("lock:{id}", single_flight=True).bind(id=_id())
    lock = fill_lock_key(bound, "page:1")
    redis = redis_clients[region]
    if isinstance(redis, RedisCluster):
        await redis.initialize()
    racing = _TakenOverBetweenCalls(redis, lock)
    cache = CacheClient(cast(RedisClient, racing))

    async def load() -> bytes:
        return b"value"

    assert (await cache.fetch(bound, "page:1", load)).source is Source.LOADED
    held_by_other = await redis.get(lock)
    assert not (racing.taken_over and held_by_other is None), "another caller's lock was deleted"
    assert held_by_other is None  # compare and delete in one step: it was still ours

    async def lock_expires_and_is_taken_while_loading() -> bytes:
        await redis.set(lock, b"another caller", px=5000)
        return b"value"

    await redis.delete(entry_key(bound, "page:1"))
    await cache.fetch(bound, "page:1", lock_expires_and_is_taken_while_loading)
    assert await redis.get(lock) == b"another caller"


async def test_an_escaped_pattern_matches_only_its_literal_under_redis_glob_rules(
    region: str, redis_clients: dict[str, RedisClient]
) -> None:
    redis = redis_clients[region]
    tag = "{glob-" + _id() + "}"
    literal = tag + ":a*b?[c]\\d"
    decoys = [tag + ":aXbY[c]\\d", tag + ":aXbYc\\d", tag + ":a*b?[c]\\dX", tag + ":a*b?c\\d"]
    for key in (literal, *decoys):
        await redis.set(key, b"1", px=60_000)
    found = [key async for key in redis.scan_iter(match=escape_glob(literal), count=1000)]
    assert found == [literal.encode()]
