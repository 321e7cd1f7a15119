"""CacheClient when its Redis restarts or is gone: callers get values, never connection errors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from contracts import RedisTarget
from contracts.example_orders import COMPANY_ORDERS
from producers import CacheClient, Source, connect_redis
from tests.integration.redis_server import RedisServer

CALLERS = 200


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A standalone Redis of this test alone."""
    started = RedisServer(tmp_path / "redis")
    await started.start()
    yield started
    await started.stop()


async def test_restart_reconnects_each_pooled_connection_and_caches_again(
    server: RedisServer,
) -> None:
    client = connect_redis(RedisTarget(name="own", url=server.url))
    cache = CacheClient(client)
    run = uuid.uuid4().hex[:8]
    namespaces = [COMPANY_ORDERS.bind(company_id=f"c-{run}-{i}") for i in range(CALLERS)]

    async def load() -> bytes:
        return b"page"

    try:
        # Many concurrent callers fill the pool with open connections...
        await asyncio.gather(*(cache.fetch(ns, "page:1", load) for ns in namespaces))
        await server.stop()
        await server.start()
        # ...which the restart closed: each is replaced on first use, and the fill is cached.
        fetched = await asyncio.gather(*(cache.fetch(ns, "page:1", load) for ns in namespaces))
        assert {f.source for f in fetched} == {Source.LOADED}
        reads = await asyncio.gather(*(cache.get(ns, "page:1") for ns in namespaces))
        assert reads == [b"page"] * CALLERS
    finally:
        await client.aclose()


async def test_redis_gone_serves_the_loaded_value_uncached(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect_redis(RedisTarget(name="own", url=server.url, socket_timeout_s=0.5))
    cache = CacheClient(client)
    namespace = COMPANY_ORDERS.bind(company_id=f"c-{uuid.uuid4().hex[:8]}")
    loads = 0

    async def load() -> bytes:
        nonlocal loads
        loads += 1
        return b"from the database"

    try:
        assert (await cache.fetch(namespace, "page:1", load)).source is Source.LOADED
        await server.stop()
        fetched = await cache.fetch(namespace, "page:1", load)
        assert fetched == type(fetched)(b"from the database", Source.UNCACHED)
        assert loads == 2
        assert "serving the loaded value uncached" in caplog.text
    finally:
        await client.aclose()


async def test_loader_error_is_raised_unchanged_while_redis_is_gone(server: RedisServer) -> None:
    client = connect_redis(RedisTarget(name="own", url=server.url, socket_timeout_s=0.5))
    cache = CacheClient(client)
    namespace = COMPANY_ORDERS.bind(company_id=f"c-{uuid.uuid4().hex[:8]}")
    loads = 0

    async def failing_load() -> bytes:
        nonlocal loads
        loads += 1
        raise LookupError("no such company")

    try:
        await server.stop()
        with pytest.raises(LookupError, match="no such company"):
            await cache.fetch(namespace, "page:1", failing_load)
        assert loads == 1
    finally:
        await client.aclose()
