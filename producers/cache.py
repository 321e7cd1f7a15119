"""CacheClient: read-through caching of read models, race-safe against purges.

Reads are one round trip (`MGET {N}:gen {N}:e:<entry>`); an entry filled under another generation
is a miss. A fill reads the generation before the source of truth and is stored only if that
generation is still current (one Lua call), so a purge that lands in between makes the fill
disappear instead of leaving a stale value behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from contracts.catalogue import BoundNamespace
from contracts.connections import RedisTarget
from contracts.layout import (
    FILL_IF_GENERATION,
    decode_entry,
    encode_entry,
    entry_key,
    generation_key,
    generation_ttl,
    new_generation,
)

RedisClient = Redis | RedisCluster
"""A standalone or Cluster asyncio client of redis-py."""


def connect_redis(target: RedisTarget) -> RedisClient:
    """A client for `target` (standalone or Cluster); it connects lazily."""
    if target.cluster:
        return RedisCluster.from_url(target.url, **target.client_kwargs())
    client: Redis = Redis.from_url(target.url, **target.client_kwargs())
    return client


@dataclass(frozen=True, slots=True)
class CacheRead:
    """The outcome of a read: the namespace's current generation and the value, if it hit."""

    generation: bytes
    value: bytes | None

    @property
    def hit(self) -> bool:
        """Whether a valid entry was found."""
        return self.value is not None


class CacheClient:
    """Generation-checked reads and conditional fills on one Redis deployment."""

    def __init__(self, redis: RedisClient, *, max_in_flight: int = 64) -> None:
        """redis: the region's client (see `connect_redis`).
        max_in_flight: how many commands this client sends at once; callers beyond it wait.
            Keep it below the client's pool size: redis-py fails a command, rather than
            waiting, when its pool is exhausted.
        """
        self._redis = redis
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._cluster_ready = not isinstance(redis, RedisCluster)
        self._cluster_init = asyncio.Lock()
        self._fill_if_generation = redis.register_script(FILL_IF_GENERATION)

    async def read(self, namespace: BoundNamespace, entry: str) -> CacheRead:
        """Read one entry; a miss still returns the generation to fill under.

        namespace: the concrete namespace, e.g. `COMPANY_ORDERS.bind(company_id=42)`.
        entry: the entry name inside it, e.g. `page:1`.
        """
        keys = (generation_key(namespace), entry_key(namespace, entry))
        async with self._turn() as redis:
            # Clients are created without decode_responses, so values come back as bytes.
            generation, raw = cast(list[bytes | None], await redis.mget(*keys))
        if generation is None:
            # No token (never purged, evicted, lost in a failover): write a fresh one first,
            # so that no entry filled under a lost token can become valid again.
            return CacheRead(await self._ensure_generation(namespace), None)
        stored = decode_entry(raw) if raw is not None else None
        if (
            stored is not None
            and stored.generation == generation
            and stored.schema_version == namespace.namespace.value_schema_version
        ):
            return CacheRead(generation, stored.value)
        return CacheRead(generation, None)

    async def get(self, namespace: BoundNamespace, entry: str) -> bytes | None:
        """The entry's value, or None on a miss."""
        return (await self.read(namespace, entry)).value

    async def store(
        self, namespace: BoundNamespace, entry: str, value: bytes, *, generation: bytes
    ) -> bool:
        """Store `value` if `generation` is still current; False when a purge came in between.

        generation: the generation returned by the `read` made before reading the source.
        """
        ttl_ms = int(namespace.namespace.ttl.total_seconds() * 1000)
        async with self._turn():
            stored = await self._fill_if_generation(
                keys=[generation_key(namespace), entry_key(namespace, entry)],
                args=[
                    generation,
                    encode_entry(generation, namespace.namespace.value_schema_version, value),
                    ttl_ms,
                ],
            )
        return bool(stored)

    async def get_or_fill(
        self,
        namespace: BoundNamespace,
        entry: str,
        load: Callable[[], Awaitable[bytes]],
    ) -> bytes:
        """The cached value, or `load()`'s result stored under the generation read first.

        load: reads the source of truth and returns the encoded value.
        """
        read = await self.read(namespace, entry)
        if read.value is not None:
            return read.value
        value = await load()
        await self.store(namespace, entry, value, generation=read.generation)
        return value

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[RedisClient]:
        """The client, once it is ready and a place among the in-flight commands is free."""
        if not self._cluster_ready:
            # A Cluster client left to initialise itself under concurrent first use routes
            # some commands to the wrong master, and the MOVED storm makes it reset
            # connections other calls are using. Load the slot map once, before any command.
            async with self._cluster_init:
                if not self._cluster_ready:
                    await cast(RedisCluster, self._redis).initialize()
                    self._cluster_ready = True
        async with self._in_flight:
            yield self._redis

    async def _ensure_generation(self, namespace: BoundNamespace) -> bytes:
        fresh = new_generation()
        ttl_ms = int(generation_ttl(namespace).total_seconds() * 1000)
        async with self._turn() as redis:
            current = await redis.set(
                generation_key(namespace), fresh, nx=True, get=True, px=ttl_ms
            )
        return current if isinstance(current, bytes) else fresh
