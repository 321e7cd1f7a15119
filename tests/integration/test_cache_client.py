"""CacheClient on real Redis, standalone (eu) and Cluster (us), against the real purge engine."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest

from contracts.example_orders import COMPANY_ORDERS
from contracts.layout import entry_key, generation_key
from invalidator import InvalidatorSettings
from invalidator.purge import purge_namespaces
from producers import CacheClient, RedisClient, connect_redis
from tests.integration.invalidators import REGIONS

pytestmark = pytest.mark.parametrize("region", REGIONS)


def _company() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


async def test_miss_fill_hit(region: str, caches: dict[str, CacheClient]) -> None:
    namespace = COMPANY_ORDERS.bind(company_id=_company())
    cache = caches[region]
    loads = 0

    async def load() -> bytes:
        nonlocal loads
        loads += 1
        return b'["o-1"]'

    assert await cache.get(namespace, "page:1") is None
    assert await cache.get_or_fill(namespace, "page:1", load) == b'["o-1"]'
    assert await cache.get_or_fill(namespace, "page:1", load) == b'["o-1"]'
    assert loads == 1


async def test_purge_turns_entries_into_misses_in_one_step(
    region: str, caches: dict[str, CacheClient], redis_clients: dict[str, RedisClient]
) -> None:
    namespace = COMPANY_ORDERS.bind(company_id=_company())
    cache = caches[region]
    for page in range(5):
        read = await cache.read(namespace, f"page:{page}")
        assert await cache.store(namespace, f"page:{page}", b"old", generation=read.generation)
    assert await cache.get(namespace, "page:3") == b"old"

    assert (await purge_namespaces(redis_clients[region], [namespace])).commands == 1

    for page in range(5):
        assert await cache.get(namespace, f"page:{page}") is None


async def test_fill_that_read_its_generation_before_a_purge_is_refused(
    region: str, caches: dict[str, CacheClient], redis_clients: dict[str, RedisClient]
) -> None:
    namespace = COMPANY_ORDERS.bind(company_id=_company())
    cache = caches[region]
    before = await cache.read(namespace, "page:1")  # the reader reads the generation...
    await purge_namespaces(redis_clients[region], [namespace])  # ...a write purges...
    stored = await cache.store(namespace, "page:1", b"stale", generation=before.generation)
    assert stored is False  # ...and the stale fill never lands
    assert await cache.get(namespace, "page:1") is None


async def test_lost_generation_never_revives_an_old_entry(
    region: str, caches: dict[str, CacheClient], redis_clients: dict[str, RedisClient]
) -> None:
    namespace = COMPANY_ORDERS.bind(company_id=_company())
    cache = caches[region]
    read = await cache.read(namespace, "page:1")
    await cache.store(namespace, "page:1", b"v1", generation=read.generation)
    await redis_clients[region].delete(generation_key(namespace))  # evicted or lost in failover

    after = await cache.read(namespace, "page:1")
    assert after.value is None
    assert after.generation != read.generation
    assert await redis_clients[region].exists(entry_key(namespace, "page:1")) == 1


async def test_entry_of_another_value_schema_version_is_a_miss(
    region: str, caches: dict[str, CacheClient]
) -> None:
    namespace = COMPANY_ORDERS.bind(company_id=_company())
    cache = caches[region]
    read = await cache.read(namespace, "page:1")
    await cache.store(namespace, "page:1", b"v1-shape", generation=read.generation)
    upgraded = dataclasses.replace(COMPANY_ORDERS, value_schema_version=2)
    assert await cache.get(upgraded.bind(company_id=namespace.key.split(":")[1]), "page:1") is None
    assert await cache.get(namespace, "page:1") == b"v1-shape"


async def test_a_fresh_client_under_concurrent_first_use_reads_every_slot(
    region: str, redis_clients: dict[str, RedisClient], settings: InvalidatorSettings
) -> None:
    # A Cluster client that initialises lazily under concurrent first use misroutes commands
    # and resets connections in use; CacheClient loads the slot map once before any command.
    fresh = connect_redis(settings.targets(region)[0])
    try:
        cache = CacheClient(fresh)
        namespaces = [COMPANY_ORDERS.bind(company_id=_company()) for _ in range(200)]
        reads = await asyncio.gather(*(cache.read(ns, "page:1") for ns in namespaces))
        assert all(read.value is None and read.generation for read in reads)
    finally:
        await fresh.aclose()
