"""CacheClient: read-through caching of read models, race-safe against purges.

Reads are one round trip (`MGET {N}:gen {N}:e:<entry>`); an entry filled under another generation
is a miss. A fill reads the generation before the source of truth and is stored only if that
generation is still current (one Lua call), so a purge that lands in between makes the fill
disappear instead of leaving a stale value behind. Namespaces can ask for single-flight fills
(one caller loads, the others wait for its value), stale serving while a fill runs, and a fill
hold-off after each purge.

When Redis fails (down, restarted, unreachable), `get_or_fill` and `fetch` still answer: a
standalone client retries a command once on a fresh connection (the pooled ones die with a
restart), and if Redis still fails the loader's value is served without being cached.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import AuthenticationError, ConnectionError, TimeoutError

from contracts.connections import RedisTarget
from contracts.errors import ContractError
from contracts.layout import (
    FILL_IF_GENERATION,
    FILL_STORED,
    RELEASE_FILL_LOCK,
    decode_entry,
    encode_entry,
    entry_key,
    fill_lock_key,
    generation_key,
    generation_ttl,
    hold_off_key,
    index_key,
    new_generation,
)
from contracts.namespaces import BoundNamespace, PurgeStrategy
from contracts.redis_clients import RedisClient, redis_client

log = logging.getLogger(__name__)

_WAIT_POLL_S = (0.002, 0.005, 0.01, 0.02, 0.05)

_OUTAGES = (ConnectionError, TimeoutError)
"""Redis errors that mean "unreachable right now"; `fetch` serves the loader's value on them."""


def connect_redis(target: RedisTarget) -> RedisClient:
    """A client for `target` (standalone or Cluster); it connects lazily.

    A standalone client retries a command once, at once, on a fresh connection when its pooled
    connection was closed (a Redis restart closes every one); a timeout is not retried, so
    `socket_timeout_s` still bounds a call. A Cluster client has redis-py's own retries, which
    also reload the slot map.
    """
    return redis_client(target, retry_closed_connection=True)


@dataclass(frozen=True, slots=True)
class CacheRead:
    """The outcome of a read: the current generation, the value if it hit, and, on a miss,
    the entry of an older generation (`previous`) for namespaces that serve stale values."""

    generation: bytes
    value: bytes | None
    previous: bytes | None = None

    @property
    def hit(self) -> bool:
        """Whether a valid entry was found."""
        return self.value is not None


class Source(enum.StrEnum):
    """Where a `fetch` got its value."""

    HIT = "hit"
    """A valid entry."""
    LOADED = "loaded"
    """This caller loaded it from the source of truth."""
    WAITED = "waited"
    """Another caller's single-flight fill, waited for."""
    STALE = "stale"
    """The previous generation's entry, while another caller fills (namespaces that allow it)."""
    UNCACHED = "uncached"
    """Loaded from the source of truth and not cached: Redis could not be reached."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """A value and where it came from."""

    value: bytes
    source: Source

    @property
    def stale(self) -> bool:
        """Whether the value may predate the last purge (only with serve_stale_while_filling)."""
        return self.source is Source.STALE


class CacheClient:
    """Generation-checked reads and conditional fills on one Redis deployment."""

    def __init__(self, redis: RedisClient, *, max_in_flight: int = 64) -> None:
        """redis: the region's client (see `connect_redis`).
        max_in_flight: how many commands this client sends at once; callers beyond it wait.
            Keep it below the client's pool size: redis-py fails a command, rather than
            waiting, when its pool is exhausted.
        """
        self._turn = _Turn(redis, max_in_flight)
        self._fill_if_generation = redis.register_script(FILL_IF_GENERATION)
        self._release_fill_lock = redis.register_script(RELEASE_FILL_LOCK)
        self._local_fills: dict[tuple[str, bytes], asyncio.Future[bytes]] = {}

    async def read(self, namespace: BoundNamespace, entry: str) -> CacheRead:
        """Read one entry; a miss still returns the generation to fill under.

        namespace: the concrete namespace, e.g. `COMPANY_ORDERS.bind(company_id=42)`.
        entry: the entry name inside it, e.g. `page:1`.
        """
        return CacheRead(*await self._lookup(namespace, entry))

    async def _lookup(
        self, namespace: BoundNamespace, entry: str
    ) -> tuple[bytes, bytes | None, bytes | None]:
        """`read`'s outcome as a plain tuple (generation, value, previous): `fetch` builds no
        record on a hit besides the one it returns."""
        _require_client_layout(namespace)
        keys = [generation_key(namespace), entry_key(namespace, entry)]
        turn = self._turn
        # A free place taken without a coroutine (`async with` makes two per command: ~3% of
        # a hit's CPU with 64 callers).
        redis = turn.take_if_free()
        if redis is None:
            redis = await turn.take()
        try:
            # The command `mget()` sends, without its argument handling (an import and a new
            # list per call: ~4% of a hit's CPU); `keys` as it passes them. Clients are created
            # without decode_responses, so values come back as bytes.
            reply = await redis.execute_command("MGET", *keys, keys=keys)
        finally:
            turn.hand_on()
        generation, raw = cast(list[bytes | None], reply)
        if generation is None:
            # No token (never purged, evicted, lost in a failover): write a fresh one first,
            # so that no entry filled under a lost token can become valid again.
            return await self._ensure_generation(namespace), None, None
        stored = decode_entry(raw) if raw is not None else None
        if stored is None or stored.schema_version != namespace.namespace.value_schema_version:
            return generation, None, None
        if stored.generation == generation:
            return generation, stored.value, None
        return generation, None, stored.value

    async def get(self, namespace: BoundNamespace, entry: str) -> bytes | None:
        """The entry's value, or None on a miss."""
        return (await self.read(namespace, entry)).value

    async def store(
        self, namespace: BoundNamespace, entry: str, value: bytes, *, generation: bytes
    ) -> bool:
        """Store `value` if `generation` is still current; False when a purge came in between
        (or the namespace is in its fill hold-off after a purge).

        generation: the generation returned by the `read` made before reading the source.
        """
        _require_client_layout(namespace)
        ns = namespace.namespace
        ttl_ms = int(ns.ttl.total_seconds() * 1000)
        indexed = "1" if ns.strategy is PurgeStrategy.INDEX else "0"
        async with self._turn:
            outcome = await self._fill_if_generation(
                keys=[
                    generation_key(namespace),
                    entry_key(namespace, entry),
                    hold_off_key(namespace),
                    index_key(namespace),
                ],
                args=[
                    generation,
                    encode_entry(generation, ns.value_schema_version, value),
                    ttl_ms,
                    indexed,
                ],
            )
        return int(outcome) == FILL_STORED

    async def get_or_fill(
        self, namespace: BoundNamespace, entry: str, load: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        """The cached value, or `load()`'s result stored under the generation read first.

        load: reads the source of truth and returns the encoded value.
        """
        return (await self.fetch(namespace, entry, load)).value

    async def fetch(
        self, namespace: BoundNamespace, entry: str, load: Callable[[], Awaitable[bytes]]
    ) -> Fetched:
        """Like `get_or_fill`, saying where the value came from (hit, loaded, waited, stale).

        For a single-flight namespace only one caller (across processes) loads a missing
        entry; the others wait up to `fill_wait` for its value, or get the previous
        generation's value marked stale where the namespace allows it.
        When Redis cannot be reached (connection refused or closed, timeout), the value comes
        from `load` and is not cached (`Source.UNCACHED`, logged); `load` is called at most once.
        A wrong password and other Redis errors are raised.
        """
        loader: _LoadOnce | None = None
        try:
            generation, value, previous = await self._lookup(namespace, entry)
            if value is not None:
                return Fetched(value, Source.HIT)
            loader = _LoadOnce(load)
            read = CacheRead(generation, None, previous)
            return await self._fill(namespace, entry, loader, read)
        except _OUTAGES as error:
            if isinstance(error, AuthenticationError) or (loader is not None and loader.failed):
                raise
            loader = loader or _LoadOnce(load)
            log.warning(
                "cache %s: Redis unreachable (%s: %s); serving the loaded value uncached",
                namespace.key,
                type(error).__name__,
                error,
            )
            return Fetched(await loader(), Source.UNCACHED)

    async def _fill(
        self, namespace: BoundNamespace, entry: str, load: _LoadOnce, read: CacheRead
    ) -> Fetched:
        """A miss: load and store, or share a fill (single-flight namespaces)."""
        if not namespace.namespace.single_flight:
            return Fetched(await self._load_and_store(namespace, entry, load, read), Source.LOADED)
        return await self._single_flight(namespace, entry, load, read)

    async def _load_and_store(
        self,
        namespace: BoundNamespace,
        entry: str,
        load: Callable[[], Awaitable[bytes]],
        read: CacheRead,
    ) -> bytes:
        value = await load()
        await self.store(namespace, entry, value, generation=read.generation)
        return value

    async def _single_flight(
        self,
        namespace: BoundNamespace,
        entry: str,
        load: Callable[[], Awaitable[bytes]],
        read: CacheRead,
    ) -> Fetched:
        # Callers of this process share one fill per entry and generation...
        local_key = (entry_key(namespace, entry), read.generation)
        running = self._local_fills.get(local_key)
        if running is not None:
            return Fetched(await asyncio.shield(running), Source.WAITED)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._local_fills[local_key] = future
        try:
            fetched = await self._single_flight_across_processes(namespace, entry, load, read)
            future.set_result(fetched.value)
            return fetched
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # a failure is reported to this caller; waiters get it too
            raise
        finally:
            del self._local_fills[local_key]

    async def _single_flight_across_processes(
        self,
        namespace: BoundNamespace,
        entry: str,
        load: Callable[[], Awaitable[bytes]],
        read: CacheRead,
    ) -> Fetched:
        # ...and processes share one through a lock key in the namespace's slot.
        ns = namespace.namespace
        lock = fill_lock_key(namespace, entry)
        token = new_generation()
        wait_ms = max(1, int(ns.fill_wait.total_seconds() * 1000))
        async with self._turn as redis:
            acquired = await redis.set(lock, token, nx=True, px=wait_ms)
        if acquired:
            try:
                value = await self._load_and_store(namespace, entry, load, read)
            finally:
                async with self._turn:
                    await self._release_fill_lock(keys=[lock], args=[token])
            return Fetched(value, Source.LOADED)
        if ns.serve_stale_while_filling and read.previous is not None:
            return Fetched(read.previous, Source.STALE)
        deadline = time.monotonic() + ns.fill_wait.total_seconds()
        attempt = 0
        while time.monotonic() < deadline:
            # Polling the other caller's fill with backoff: a few reads per waiter, no herd.
            await asyncio.sleep(_WAIT_POLL_S[min(attempt, len(_WAIT_POLL_S) - 1)])
            attempt += 1
            again = await self.read(namespace, entry)
            if again.value is not None:
                return Fetched(again.value, Source.WAITED)
        # The filler is slow or gone: load ourselves rather than fail the caller.
        return Fetched(await self._load_and_store(namespace, entry, load, read), Source.LOADED)

    async def _ensure_generation(self, namespace: BoundNamespace) -> bytes:
        fresh = new_generation()
        ttl_ms = int(generation_ttl(namespace.namespace).total_seconds() * 1000)
        async with self._turn as redis:
            current = await redis.set(
                generation_key(namespace), fresh, nx=True, get=True, px=ttl_ms
            )
        return current if isinstance(current, bytes) else fresh


class _Turn:
    """`async with turn as redis`: the client, once it is ready and a place among the in-flight
    commands is free (the places are handed on in arrival order). One object serves every
    command of a `CacheClient`: its entry and exit are two plain coroutines, where an
    `asynccontextmanager` made an async generator (and registered it with the event loop) per
    command; a free place is taken without awaiting anything."""

    def __init__(self, redis: RedisClient, max_in_flight: int) -> None:
        self._redis = redis
        self._free = max_in_flight
        # Invariant: while a place is free, nobody waits (a place is freed only when no live
        # caller waits for it).
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._cluster_ready = not isinstance(redis, RedisCluster)
        self._cluster_init = asyncio.Lock()

    async def __aenter__(self) -> RedisClient:
        return await self.take()

    async def __aexit__(self, *_: object) -> None:
        self.hand_on()

    def take_if_free(self) -> RedisClient | None:
        """The client, with a place taken, when one is free and the client ready; else None
        (nothing taken: `take` waits)."""
        if self._free and self._cluster_ready:
            self._free -= 1
            return self._redis
        return None

    async def take(self) -> RedisClient:
        """The client, once it is ready and a place is free (taken); `hand_on` gives it back."""
        if not self._cluster_ready:
            await self._initialise_cluster()
        if self._free:
            self._free -= 1
        else:
            await self._wait_for_a_place()
        return self._redis

    def hand_on(self) -> None:
        """The place of a command that ended goes to the first caller still waiting, else is
        freed."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():  # a cancelled caller's future is done: skipped
                waiter.set_result(None)
                return
        self._free += 1

    async def _wait_for_a_place(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.hand_on()  # handed a place just as it was cancelled: passed on
            raise

    async def _initialise_cluster(self) -> None:
        # A Cluster client left to initialise itself under concurrent first use routes some
        # commands to the wrong master, and the MOVED storm makes it reset connections other
        # calls are using. Load the slot map once, before any command.
        async with self._cluster_init:
            if not self._cluster_ready:
                await cast(RedisCluster, self._redis).initialize()
                self._cluster_ready = True


class _LoadOnce:
    """A caller's loader, called at most once: after an outage, `fetch` serves the value it
    already loaded instead of loading again; a loader that raised is never called again."""

    def __init__(self, load: Callable[[], Awaitable[bytes]]) -> None:
        self._load = load
        self._value: bytes | None = None
        self.failed = False

    async def __call__(self) -> bytes:
        if self._value is None:
            try:
                self._value = await self._load()
            except BaseException:
                self.failed = True
                raise
        return self._value


_CLIENT_LAYOUT = frozenset(strategy for strategy in PurgeStrategy if strategy.uses_client_layout)
"""The strategies whose entries CacheClient writes (a set: checked on every read)."""


def _require_client_layout(namespace: BoundNamespace) -> None:
    strategy = namespace.namespace.strategy
    if strategy not in _CLIENT_LAYOUT:
        raise ContractError(
            f"namespace {namespace.namespace.name!r} uses the {strategy} strategy, for legacy "
            "keys written without CacheClient; declare it with strategy generation or index"
        )
