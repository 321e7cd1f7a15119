"""The same window delivered twice, and out of order across partitions: no stale read.

Writers bump items in a real SQLite database (`bench.stale.store`) and publish a status change
per write; the writes of one item are in order on its partition, those of different items
interleave arbitrarily across partitions. Readers read through `CacheClient` in both regions
all along. After a first delivery, both groups are stopped and rewound to the window's start
with `invalidator offsets rewind --execute` (the operator path that delivers a window to the
invalidators again), restarted, and new writes go on while the old window is purged a second
time.

A read is stale when it started after a write's purge was seen in its region (the namespace's
generation changed after the write's commit) and returned a value built before that write.
"""

from __future__ import annotations

import asyncio
import bisect
import random
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime

from bench.stale.store import ItemStore, value_version
from bench.stale.variants import status_event
from bench.stale.workload import Read
from contracts.example_orders import CATALOGUE, COMPANY_ORDERS, ORDER
from contracts.layout import generation_key
from contracts.namespaces import BoundNamespace
from invalidator import InvalidatorSettings
from producers import CacheClient, EventPublisher, RedisClient, Source
from tests.faults.accounting import Outcome, account, record_outcome, scaled
from tests.integration.cli import Cli
from tests.integration.invalidators import REGIONS, running_invalidators
from tests.integration.kafka_tools import caught_up
from tests.waiting import wait_until

ITEMS = scaled(16, 64)
WRITES_PER_PHASE = scaled(4, 20)
READERS = 4
PURGE_DEADLINE_S = 60.0


class Workload:
    """Writers and readers of one run, and what they saw (one monotonic clock)."""

    def __init__(
        self,
        publisher: EventPublisher,
        caches: dict[str, CacheClient],
        redis_clients: dict[str, RedisClient],
    ) -> None:
        """publisher: the write side; caches, redis_clients: per region, to read and watch."""
        run = uuid.uuid4().hex[:8]
        self.items = [f"i-{run}-{i}" for i in range(ITEMS)]
        self.store = ItemStore(self.items)
        self._publisher = publisher
        self._caches = caches
        self._redis = redis_clients
        self.published: dict[str, BoundNamespace] = {}
        """Event id -> a namespace only its item's events purge (nobody reads it)."""
        self.landed: dict[tuple[str, str], list[float]] = defaultdict(list)
        """(region, item) -> when the purge of version 1, 2, ... was seen there."""
        self.reads: list[Read] = []
        self.reading = asyncio.Event()

    def read_namespace(self, item: str) -> BoundNamespace:
        """The namespace readers read (an item's order list page)."""
        return COMPANY_ORDERS.bind(company_id=item)

    async def seed(self) -> None:
        """One read of every item in every region: every read namespace has a token, so only
        a purge changes it from now on."""
        for region in REGIONS:
            for item in self.items:
                await self.read_version(region, item)

    async def write_item(self, item: str, writes: int) -> None:
        """`writes` writes of `item` in order, each waiting until its purge is seen everywhere."""
        for _ in range(writes):
            await self.write_once(item)

    async def write_once(self, item: str) -> None:
        """Commit a write of `item`, publish its event, wait until its purge is seen in every
        region and note when."""
        key = generation_key(self.read_namespace(item))
        version = self.store.write(item)
        before = {region: await self._redis[region].get(key) for region in REGIONS}
        envelope = await self._publisher.publish(
            status_event(item, version), tenant="acme", aggregate_version=version
        )
        self.published[str(envelope.event_id)] = ORDER.bind(order_id=f"{item}.order")
        waiting = set(REGIONS)

        async def purged_everywhere() -> bool:
            for region in list(waiting):
                if await self._redis[region].get(key) != before[region]:
                    self.landed[(region, item)].append(time.monotonic())
                    waiting.discard(region)
            return not waiting

        await wait_until(
            purged_everywhere,
            within=PURGE_DEADLINE_S,
            what=f"the purge of {item} v{version} in every region",
            interval=0.005,
        )

    async def write_all(self, writes: int) -> None:
        """Every item written concurrently: partitions interleave however they do."""
        order = list(self.items)
        random.shuffle(order)
        await asyncio.gather(*(self.write_item(item, writes) for item in order))

    async def read_until_stopped(self, stop: asyncio.Event) -> None:
        """Read random items in random regions until `stop` is set."""
        rng = random.Random()
        while not stop.is_set():
            region = rng.choice(REGIONS)
            item = rng.choice(self.items)
            started = time.monotonic()
            version, hit = await self.read_version(region, item)
            self.reads.append(Read(started, region, item, version, hit))
            self.reading.set()

    async def read_version(self, region: str, item: str) -> tuple[int, bool]:
        """Read `item` in `region` through the cache: the version of the value, and if a hit."""

        async def load() -> bytes:
            return self.store.read(item)

        fetched = await self._caches[region].fetch(self.read_namespace(item), "page:1", load)
        return value_version(fetched.value), fetched.source is Source.HIT

    def stale_reads(self) -> list[Read]:
        """Reads older than a write whose purge was seen in their region before they began."""
        return [
            read
            for read in self.reads
            if read.version
            < bisect.bisect_left(self.landed[(read.region, read.item)], read.started_at)
        ]


async def test_a_window_delivered_twice_and_out_of_order_leaves_no_stale_read(
    cli: Cli,
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    caches: dict[str, CacheClient],
    redis_clients: dict[str, RedisClient],
) -> None:
    for client in redis_clients.values():
        await client.initialize()  # a Cluster client loads its slot map before concurrent use
    workload = Workload(publisher, caches, redis_clients)
    stop_reading = asyncio.Event()
    readers: list[asyncio.Task[None]] = []
    groups = [settings.group_id(region) for region in REGIONS]

    async def all_caught_up() -> bool:
        return all([await caught_up(settings.kafka, g, CATALOGUE.topics()) for g in groups])

    try:
        async with running_invalidators(settings, CATALOGUE):
            await workload.seed()
            window_start = datetime.now(UTC)
            readers = [
                asyncio.create_task(workload.read_until_stopped(stop_reading))
                for _ in range(READERS)
            ]
            await wait_until(_is_set(workload.reading), within=30, what="the readers to start")
            await workload.write_all(WRITES_PER_PHASE)
            first_delivery = len(workload.published)
            await wait_until(all_caught_up, within=60, what="the first delivery", interval=0.2)

        for region in REGIONS:
            status, plan = await cli(
                "offsets", "rewind", "--region", region,
                "--to-datetime", window_start.isoformat(), "--execute",
            )  # fmt: skip
            assert status == 0 and plan["executed"], plan
            assert plan["events_to_replay"] >= first_delivery, plan

        restarted = time.monotonic()
        async with running_invalidators(settings, CATALOGUE, from_log_end=False) as again:
            await workload.write_all(WRITES_PER_PHASE)
            await wait_until(all_caught_up, within=120, what="the second delivery", interval=0.2)
            recovered = time.monotonic() - restarted
            redelivered = {region: inv.stats.events for region, inv in again.items()}
        final = {
            (region, item): (await workload.read_version(region, item))[0]
            for region in REGIONS
            for item in workload.items
        }
    finally:
        stop_reading.set()
        await asyncio.gather(*readers)
        workload.store.close()

    stale = workload.stale_reads()
    accounting = await account(workload.published, redis_clients)
    record_outcome(
        Outcome(
            scenario="window delivered twice, out of order",
            events=len(workload.published),
            lost=accounting.lost_events,
            dead_lettered=0,
            recover_s=recovered,
        )
    )
    print(
        f"\nreplay: {len(workload.published)} events, the first {first_delivery} delivered twice "
        f"(events purged after the rewind: {redelivered}); {len(workload.reads)} reads, "
        f"{sum(r.hit for r in workload.reads)} hits, {len(stale)} stale; caught up "
        f"{recovered:.1f}s after the restart"
    )
    accounting.assert_nothing_lost()
    assert len(workload.published) == 2 * ITEMS * WRITES_PER_PHASE
    assert all(count >= len(workload.published) for count in redelivered.values()), (
        f"the rewound window was not delivered again: {redelivered} events purged"
    )
    assert stale == [], f"{len(stale)} stale reads of {len(workload.reads)}, e.g. {stale[:3]}"
    assert len(workload.reads) >= len(workload.published), "too few reads to tell"
    behind = {where: v for where, v in final.items() if v != 2 * WRITES_PER_PHASE}
    assert behind == {}, f"reads after the drain behind the last write: {list(behind.items())[:3]}"


def _is_set(event: asyncio.Event):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return event.is_set()

    return check
