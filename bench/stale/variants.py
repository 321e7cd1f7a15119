"""The three variants: this system, and two naive baselines (TTL-only, delete-on-event).

`this-system` reads and fills through `CacheClient` exactly as a service should (the generation
is read before the database, the fill is conditional) and publishes with `EventPublisher`; the
real invalidators purge. In the mirrored topology each item has a home region, whose own cluster
its writes are published to, and each region's invalidator reads its own cluster. `ttl-only` is
plain cache-aside with a one-hour TTL and no purge.
`delete-on-event` is plain cache-aside whose key a naive consumer deletes on every event.
Their keys (`stale-bench:<variant>:<item>`) cannot collide with this system's `{N}:...` layout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, cast

from bench.stale.checker import distribution_ms, purge_latency
from bench.stale.naive_invalidator import NaiveInvalidator
from bench.stale.workload import Lookup, PurgeLanding, Variant
from contracts.example_orders import COMPANY_ORDERS, STATUS_CYCLE, OrderStatusChanged
from contracts.layout import generation_key
from contracts.namespaces import BoundNamespace
from demo.invalidators import InvalidatorProcesses
from demo.topology import home_region
from demo.watch import GenerationWatch
from invalidator.settings import InvalidatorSettings
from producers import CacheClient, EventPublisher, RedisClient, connect_redis

ENTRY = "page:1"
TENANT = "stale-bench"
PURGE_TIMEOUT_S = 30.0
"""How long a write waits for its purge to be seen in every region before it counts as lost."""
READY_TIMEOUT_S = 120.0
"""How long the invalidators may take to join and purge a probe event."""
BASELINE_TTL_S = 3600


class BenchVariant(Variant, Protocol):
    """A variant the harness can start, supervise and stop around its workload."""

    landings: list[PurgeLanding]
    """When each write's purge was seen in every region (empty when nothing is purged)."""

    async def start(self) -> None:
        """Bring up what the variant needs; return when it is ready to purge."""
        ...

    async def stop(self) -> None:
        """Stop everything started."""
        ...

    def check_running(self) -> None:
        """Raise if something the variant runs in the background has failed."""
        ...

    def details(self) -> dict[str, Any]:
        """What the variant saw beyond reads, writes and purges, for the results."""
        ...


def purge_latency_by_home(
    landings: list[PurgeLanding], homes: list[str], regions: list[str]
) -> dict[str, dict[str, dict[str, float]]]:
    """Commit acknowledged -> purge seen in each region, for the writes of each home region:
    in the mirrored topology a region purges its own writes locally and the others' through the
    mirror, in the same run.

    landings: the writes' purges.
    homes: the home regions, in the order `home_region` spreads items over.
    regions: the regions purged.
    """
    return {
        home: {
            region: distribution_ms(samples, with_p999=True)
            for region, samples in purge_latency(
                [landing for landing in landings if home_region(landing.item, homes) == home],
                regions,
            ).per_region_ms.items()
        }
        for home in homes
    }


def status_event(item: str, version: int) -> OrderStatusChanged:
    """The event of an item's write: its one order moves to the next status."""
    return OrderStatusChanged(
        order_id=f"{item}.order",
        company_id=item,
        old_status=STATUS_CYCLE[(version - 1) % len(STATUS_CYCLE)],
        new_status=STATUS_CYCLE[version % len(STATUS_CYCLE)],
    )


async def connected(settings: InvalidatorSettings, region: str) -> RedisClient:
    """A client for the region's first target; a Cluster client loads its slot map first,
    because redis-py's lazy initialisation misroutes under concurrent first use."""
    client = connect_redis(settings.targets(region)[0])
    await client.initialize()
    return client


class ThisSystem:
    """Generation-checked reads and conditional fills; real invalidators in subprocesses."""

    name = "this-system"

    def __init__(
        self,
        settings: InvalidatorSettings,
        *,
        run_id: str,
        log_dir: Path,
        clusters: Mapping[str, str] | None = None,
    ) -> None:
        """settings: the endpoints.
        run_id: unique to this run (consumer groups, probe item).
        log_dir: where the invalidators' logs go.
        clusters: the mirrored topology: each region's own cluster (None: one cluster).
        """
        self._settings = settings
        self._regions = sorted(settings.regions)
        self._run_id = run_id
        self._invalidators = InvalidatorProcesses(
            settings,
            group_prefix=f"stale-bench.{run_id}",
            log_dir=log_dir,
            start_at_log_end=True,
            clusters=clusters,
        )
        # One publisher per home region in the mirrored topology; one for all otherwise.
        self._publishers = {
            home: EventPublisher(self._invalidators.region_settings(home).kafka, source=TENANT)
            for home in (self._regions if clusters else self._regions[:1])
        }
        self._clients: list[RedisClient] = []
        self._caches: dict[str, CacheClient] = {}
        self._watch: GenerationWatch | None = None
        self.landings: list[PurgeLanding] = []
        self.fills_refused = 0
        self.invalidator_stats: dict[str, dict[str, float]] = {}

    async def start(self) -> None:
        """Start the invalidators and the publisher; return once a probe event was purged."""
        for region in self._regions:
            client = await connected(self._settings, region)
            self._clients.append(client)
            self._caches[region] = CacheClient(client)
        watch_clients = {
            region: await connected(self._settings, region) for region in self._regions
        }
        self._clients.extend(watch_clients.values())
        self._watch = GenerationWatch(watch_clients)
        await self._watch.start()
        await self._invalidators.start()
        for publisher in self._publishers.values():
            await publisher.start()
        for home in self._publishers:
            await self._until_purged(f"{self._run_id}-probe-{home}")

    async def stop(self) -> None:
        """Stop everything started, keeping the invalidators' final stats."""
        for publisher in self._publishers.values():
            await publisher.stop()
        self.invalidator_stats = await self._invalidators.stop()
        if self._watch is not None:
            await self._watch.stop()
        for client in self._clients:
            await client.aclose()

    def check_running(self) -> None:
        """Raise if an invalidator process has exited."""
        self._invalidators.check_running()

    def details(self) -> dict[str, Any]:
        """What this variant saw beyond reads and writes (in the mirrored topology also the
        purge latency in each region by the writes' home region: local against mirrored)."""
        details: dict[str, Any] = {
            "fills_refused": self.fills_refused,
            "invalidator_stats": self.invalidator_stats,
        }
        if len(self._publishers) > 1:
            details["purge_latency_ms_by_home"] = purge_latency_by_home(
                self.landings, list(self._publishers), self._regions
            )
        return details

    @staticmethod
    def _namespace(item: str) -> BoundNamespace:
        return COMPANY_ORDERS.bind(company_id=item)

    async def lookup(self, region: str, item: str) -> Lookup:
        """One MGET of the generation and the entry (the generation is kept for the fill)."""
        read = await self._caches[region].read(self._namespace(item), ENTRY)
        return Lookup(read.value, read.generation)

    async def fill(self, region: str, item: str, value: bytes, lookup: Lookup) -> None:
        """Store only if the generation read before the database is still current."""
        assert lookup.generation is not None
        stored = await self._caches[region].store(
            self._namespace(item), ENTRY, value, generation=lookup.generation
        )
        self.fills_refused += not stored

    async def before_write(self, item: str) -> object:
        """The item's generation in each region, to see its purge land."""
        return await self._generations(self._namespace(item))

    async def publish(self, item: str, version: int, acked_at: float, ticket: object) -> None:
        """Publish the write's event, then wait until its purge is seen in every region."""
        assert isinstance(ticket, dict)
        await self._publisher(item).publish(
            status_event(item, version), tenant=TENANT, aggregate_version=version
        )
        landed = await self._landed(self._namespace(item), ticket, timeout_s=PURGE_TIMEOUT_S)
        self.landings.append(PurgeLanding(item, version, acked_at, landed))

    def _publisher(self, item: str) -> EventPublisher:
        """The publisher to the item's home region's cluster (the only one with one cluster)."""
        return self._publishers[home_region(item, list(self._publishers))]

    async def _generations(self, namespace: BoundNamespace) -> dict[str, bytes | None]:
        return {
            region: (await self._caches[region].read(namespace, ENTRY)).generation
            for region in self._regions
        }

    async def _landed(
        self, namespace: BoundNamespace, before: dict[str, bytes | None], *, timeout_s: float
    ) -> dict[str, float] | None:
        assert self._watch is not None
        return await self._watch.landed(generation_key(namespace), before, timeout_s=timeout_s)

    async def _until_purged(self, item: str) -> None:
        namespace = self._namespace(item)
        before = await self._generations(namespace)
        await self._publisher(item).publish(
            status_event(item, 1), tenant=TENANT, aggregate_version=1
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while await self._landed(namespace, before, timeout_s=1.0) is None:
            self.check_running()
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the invalidators purged no probe event within {READY_TIMEOUT_S:.0f} s; see "
                    + ", ".join(str(self._invalidators.log_path(r)) for r in self._regions)
                )


class _PlainCache:
    """Naive cache-aside on plain keys: GET, and an unconditional SET with a TTL on a miss."""

    def __init__(self, variant: str, clients: dict[str, RedisClient]) -> None:
        self.variant = variant
        self.clients = clients

    def key(self, item: str) -> str:
        return f"stale-bench:{self.variant}:{item}"

    async def lookup(self, region: str, item: str) -> Lookup:
        value = await self.clients[region].get(self.key(item))
        # Clients are created without decode_responses: values come back as bytes.
        return Lookup(cast(bytes | None, value))

    async def fill(self, region: str, item: str, value: bytes) -> None:
        await self.clients[region].set(self.key(item), value, ex=BASELINE_TTL_S)

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()


class _PlainCacheVariant:
    """What both baselines share: naive cache-aside reads and fills, nothing before a write."""

    _cache: _PlainCache | None

    async def lookup(self, region: str, item: str) -> Lookup:
        """A plain GET."""
        assert self._cache is not None
        return await self._cache.lookup(region, item)

    async def fill(self, region: str, item: str, value: bytes, lookup: Lookup) -> None:
        """An unconditional SET with the TTL."""
        assert self._cache is not None
        await self._cache.fill(region, item, value)

    async def before_write(self, item: str) -> object:
        """Nothing."""
        return None


class TtlOnly(_PlainCacheVariant):
    """Cache-aside with a one-hour TTL; writes only commit, nothing invalidates."""

    name = "ttl-only"

    def __init__(self, settings: InvalidatorSettings) -> None:
        """settings: the endpoints."""
        self._settings = settings
        self._cache: _PlainCache | None = None
        self.landings: list[PurgeLanding] = []

    async def start(self) -> None:
        """Connect to both regions."""
        clients = {r: await connected(self._settings, r) for r in sorted(self._settings.regions)}
        self._cache = _PlainCache(self.name, clients)

    async def stop(self) -> None:
        """Disconnect."""
        if self._cache is not None:
            await self._cache.close()

    def check_running(self) -> None:
        """Nothing runs in the background."""

    def details(self) -> dict[str, Any]:
        """Nothing beyond reads and writes."""
        return {}

    async def publish(self, item: str, version: int, acked_at: float, ticket: object) -> None:
        """Nothing: this baseline publishes no event."""


class _Deletions:
    """DELs reported by the naive invalidators, awaited by writers whichever comes first."""

    def __init__(self, regions: list[str]) -> None:
        self._regions = regions
        self._seen: dict[tuple[str, int], dict[str, float]] = {}
        self._complete: dict[tuple[str, int], asyncio.Event] = {}

    def record(self, region: str, item: str, version: int, at: float) -> None:
        seen = self._seen.setdefault((item, version), {})
        seen.setdefault(region, at)
        if len(seen) == len(self._regions):
            self._complete.setdefault((item, version), asyncio.Event()).set()

    async def landed(self, item: str, version: int, *, timeout_s: float) -> dict[str, float] | None:
        complete = self._complete.setdefault((item, version), asyncio.Event())
        try:
            async with asyncio.timeout(timeout_s):
                await complete.wait()
        except TimeoutError:
            return None
        finally:
            del self._complete[(item, version)]
        return self._seen.pop((item, version))


class DeleteOnEvent(_PlainCacheVariant):
    """Cache-aside whose key a naive consumer per region deletes on every event."""

    name = "delete-on-event"

    def __init__(self, settings: InvalidatorSettings, *, run_id: str) -> None:
        """settings: the endpoints.
        run_id: unique to this run (the probe item).
        """
        self._settings = settings
        self._regions = sorted(settings.regions)
        self._run_id = run_id
        self._publisher = EventPublisher(settings.kafka, source="stale-bench")
        self._cache: _PlainCache | None = None
        self._invalidators: list[NaiveInvalidator] = []
        self._invalidator_clients: list[RedisClient] = []
        self._deletions = _Deletions(self._regions)
        self.landings: list[PurgeLanding] = []

    async def start(self) -> None:
        """Start a naive consumer per region and the publisher; return once a probe was deleted."""
        clients = {r: await connected(self._settings, r) for r in self._regions}
        self._cache = _PlainCache(self.name, clients)
        prefix = f"stale-bench:{self.name}:{self._run_id}"
        cache = self._cache

        def key_of(item: str) -> str | None:
            key = cache.key(item)
            return key if key.startswith(prefix) else None

        for region in self._regions:
            client = await connected(self._settings, region)
            self._invalidator_clients.append(client)
            naive = NaiveInvalidator(
                self._settings.kafka,
                region=region,
                client=client,
                topic=OrderStatusChanged.topic,
                key_of=key_of,
                on_deleted=self._deletions.record,
            )
            await naive.start()
            self._invalidators.append(naive)
        await self._publisher.start()
        probe = f"{self._run_id}-probe"
        for region in self._regions:
            await self._cache.fill(region, probe, b"probe")
        await self._publisher.publish(status_event(probe, 1), tenant=TENANT, aggregate_version=1)
        if await self._deletions.landed(probe, 1, timeout_s=READY_TIMEOUT_S) is None:
            raise RuntimeError(
                f"the naive invalidators deleted no probe within {READY_TIMEOUT_S} s"
            )

    async def stop(self) -> None:
        """Stop the consumers and the publisher, disconnect."""
        await self._publisher.stop()
        for naive in self._invalidators:
            await naive.stop()
        for client in self._invalidator_clients:
            await client.aclose()
        if self._cache is not None:
            await self._cache.close()

    def check_running(self) -> None:
        """Raise if a naive consumer failed."""
        for naive in self._invalidators:
            naive.check_running()

    def details(self) -> dict[str, Any]:
        """Nothing beyond reads, writes and DEL latencies."""
        return {}

    async def publish(self, item: str, version: int, acked_at: float, ticket: object) -> None:
        """Publish the write's event, then wait until both regions' consumers deleted the key."""
        await self._publisher.publish(
            status_event(item, version), tenant=TENANT, aggregate_version=version
        )
        landed = await self._deletions.landed(item, version, timeout_s=PURGE_TIMEOUT_S)
        self.landings.append(PurgeLanding(item, version, acked_at, landed))
