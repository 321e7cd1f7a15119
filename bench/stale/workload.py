"""The workload every variant runs: paced readers per region and writers racing on hot items.

A reader reads through the variant's cache; on a miss it reads the database, waits an injected
delay (the race window between a source read and its fill), then fills. A writer commits a new
version, waits an injected delay (the race window between a commit and its event), then lets the
variant publish. One write per item is in flight at a time, so that a purge seen landing can be
attributed to its write.
"""

from __future__ import annotations

import array
import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from bench.stale.store import ItemStore, value_version


@dataclass(frozen=True)
class WorkloadParams:
    """The same for every variant of a run."""

    items: int = 20
    """Hot items (aggregates) everyone reads and writes."""
    readers_per_region: int = 16
    writers: int = 4
    reads: int = 20_000
    """Reads per variant, both regions together."""
    read_rate: float = 1500.0
    """Reads per second, all readers together (a cap: readers never burst to catch up)."""
    write_rate: float = 60.0
    """Writes per second, all writers together (a cap)."""
    fill_delay_ms: tuple[float, float] = (0.0, 20.0)
    """Uniform delay between a reader's database read and its fill..."""
    slow_fill_share: float = 0.1
    """...except for this share of the fills, which are slow readers..."""
    slow_fill_delay_ms: tuple[float, float] = (20.0, 400.0)
    """...delayed uniformly in this range."""
    publish_delay_ms: tuple[float, float] = (0.0, 5.0)
    """Uniform delay between a write's commit and its event."""
    seed: int = 1


@dataclass(frozen=True, slots=True)
class Lookup:
    """What a reader got from the cache: a value on a hit, and what a fill must be checked with."""

    value: bytes | None
    generation: bytes | None = None


@dataclass(frozen=True, slots=True)
class Read:
    """One read: when it started, where, which item, and the version of the value it returned."""

    started_at: float
    region: str
    item: str
    version: int
    hit: bool


@dataclass(frozen=True, slots=True)
class Write:
    """One committed write: the item's new version and when its commit returned."""

    item: str
    version: int
    acked_at: float


@dataclass(frozen=True, slots=True)
class PurgeLanding:
    """When a write's purge was seen done in each region; None when it was not within the
    deadline."""

    item: str
    version: int
    acked_at: float
    landed: dict[str, float] | None


class Variant(Protocol):
    """A way of caching the items: how reads look up and fill, what a write publishes."""

    name: str

    async def lookup(self, region: str, item: str) -> Lookup:
        """Read the item's cache entry in `region`."""
        ...

    async def fill(self, region: str, item: str, value: bytes, lookup: Lookup) -> None:
        """Store `value`, read from the database after `lookup`, in `region`'s cache."""
        ...

    async def before_write(self, item: str) -> object:
        """Called before the commit; what it returns is handed to `publish`."""
        ...

    async def publish(self, item: str, version: int, acked_at: float, ticket: object) -> None:
        """Called after the commit and the injected delay (publish, wait for the purge...)."""
        ...


class ReadLog:
    """Reads kept in typed arrays: hundreds of thousands of records the garbage collector never
    has to traverse (its full collections would stall the loop and inflate measured latencies).
    """

    def __init__(self) -> None:
        self._started_at = array.array("d")
        self._version = array.array("q")
        self._hit = array.array("b")
        self._region = array.array("H")
        self._item = array.array("L")
        self._names: list[str] = []
        self._name_index: dict[str, int] = {}

    def _index(self, name: str) -> int:
        if name not in self._name_index:
            self._name_index[name] = len(self._names)
            self._names.append(name)
        return self._name_index[name]

    def append(self, read: Read) -> None:
        """Record one read."""
        self._started_at.append(read.started_at)
        self._version.append(read.version)
        self._hit.append(read.hit)
        self._region.append(self._index(read.region))
        self._item.append(self._index(read.item))

    def __len__(self) -> int:
        return len(self._started_at)

    def __iter__(self) -> Iterator[Read]:
        names = self._names
        for started_at, region, item, version, hit in zip(
            self._started_at, self._region, self._item, self._version, self._hit, strict=True
        ):
            yield Read(started_at, names[region], names[item], version, bool(hit))


@dataclass
class PhaseLog:
    """Everything one variant's run recorded."""

    reads: ReadLog = field(default_factory=ReadLog)
    writes: list[Write] = field(default_factory=list)
    elapsed_s: float = 0.0
    gc_pauses: dict[str, float] = field(default_factory=dict)
    """The harness's garbage-collection pauses during the phase (see `pauses`)."""


class Workload:
    """Runs the readers and writers of one variant until the reads are done."""

    def __init__(
        self,
        variant: Variant,
        store: ItemStore,
        *,
        items: list[str],
        regions: list[str],
        params: WorkloadParams,
    ) -> None:
        """variant: the caching under test.
        store: the source of truth, seeded with `items`.
        items: the hot items.
        regions: the regions readers read in (`readers_per_region` each).
        params: sizes, rates and injected delays.
        """
        self.variant = variant
        self.store = store
        self.items = items
        self.regions = regions
        self.params = params
        self.log = PhaseLog()
        self._rng = random.Random(params.seed)
        self._locks = {item: asyncio.Lock() for item in items}
        self._reads_started = 0
        self._reads_done = asyncio.Event()

    @property
    def reads_done(self) -> int:
        """Reads completed so far."""
        return len(self.log.reads)

    async def run(self) -> PhaseLog:
        """Run until `params.reads` reads completed and the writes in flight finished."""
        readers_total = self.params.readers_per_region * len(self.regions)
        read_period = readers_total / self.params.read_rate
        write_period = self.params.writers / self.params.write_rate
        started = time.monotonic()
        readers = [
            asyncio.create_task(self._reader(region, read_period))
            for region in self.regions
            for _ in range(self.params.readers_per_region)
        ]
        writers = [
            asyncio.create_task(self._writer(write_period)) for _ in range(self.params.writers)
        ]
        try:
            await asyncio.gather(*readers)
            self._reads_done.set()
            await asyncio.gather(*writers)
        finally:
            # On an error or a cancellation, nobody may keep using the variant's clients.
            for task in (*readers, *writers):
                task.cancel()
            await asyncio.gather(*readers, *writers, return_exceptions=True)
        self.log.elapsed_s = time.monotonic() - started
        return self.log

    async def _reader(self, region: str, period: float) -> None:
        next_at = time.monotonic() + self._rng.uniform(0, period)
        await _pause_until(next_at)
        while self._reads_started < self.params.reads:
            self._reads_started += 1
            item = self._rng.choice(self.items)
            started_at = time.monotonic()
            lookup = await self.variant.lookup(region, item)
            if lookup.value is not None:
                value, hit = lookup.value, True
            else:
                value, hit = self.store.read(item), False
                await asyncio.sleep(self._fill_delay_s())
                await self.variant.fill(region, item, value, lookup)
            self.log.reads.append(Read(started_at, region, item, value_version(value), hit))
            next_at = max(next_at + period, time.monotonic())
            await _pause_until(next_at)

    async def _writer(self, period: float) -> None:
        next_at = time.monotonic() + self._rng.uniform(0, period)
        await _pause_until(next_at)
        while not self._reads_done.is_set():
            item = self._rng.choice(self.items)
            async with self._locks[item]:
                ticket = await self.variant.before_write(item)
                version = self.store.write(item)
                acked_at = time.monotonic()
                self.log.writes.append(Write(item, version, acked_at))
                await asyncio.sleep(_uniform_s(self._rng, self.params.publish_delay_ms))
                await self.variant.publish(item, version, acked_at, ticket)
            next_at = max(next_at + period, time.monotonic())
            await _pause_until(next_at)

    def _fill_delay_s(self) -> float:
        if self._rng.random() < self.params.slow_fill_share:
            return _uniform_s(self._rng, self.params.slow_fill_delay_ms)
        return _uniform_s(self._rng, self.params.fill_delay_ms)


def _uniform_s(rng: random.Random, bounds_ms: tuple[float, float]) -> float:
    return rng.uniform(*bounds_ms) / 1000


async def _pause_until(moment: float) -> None:
    """Pacing: wait until `moment` (returns at once when it has passed)."""
    delay = moment - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
