"""`python -m demo`: both invalidators, the orders service under load, and a live summary.

Readers and writers run against the real stack. Writers commit each change with its event's
outbox row; a relay publishes the rows. A read is stale when it returns a page older than a
write whose purge had already been seen in that region before the read started.

`--topology mirrored` (the stack's `up --mirrored`): the writes' home region is eu, the relay
publishes to eu's own cluster, and each region's invalidator reads its own cluster (us reads
eu's events as MirrorMaker mirrors them); the summary gives each region's e2e latency.

`--secure` (the stack's `up --secure`): every connection over TLS, each client logged in as its
own principal (`demo.logins`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from contracts import SettingsError
from contracts.example_orders import EXAMPLE_CATALOGUE
from contracts.layout import generation_key
from contracts.namespaces import BoundNamespace
from contracts.percentiles import percentile
from demo.database import DATABASES, fresh_engine, page_reader
from demo.invalidators import InvalidatorProcesses
from demo.logins import DemoLogins, plaintext_logins, secure_logins
from demo.relay import RunningRelay
from demo.service import OrdersService
from demo.store import OrdersStore, page_version
from demo.topology import TOPOLOGIES, mirror_clusters, region_settings
from demo.watch import GenerationWatch
from invalidator.cli import load_settings
from invalidator.operators import group_lag
from invalidator.settings import InvalidatorSettings
from producers import CacheClient, RedisClient, connect_redis

RUN_DIR = Path(".stack") / "demo"
PURGE_GIVE_UP_S = 30.0
"""A purge not seen in every region by then counts as unconfirmed."""
HOME_REGION = "eu"
"""The mirrored topology: where the orders service's writes are published."""


@dataclass
class Tally:
    """What the demo saw."""

    writes: int = 0
    unconfirmed: int = 0
    latency_ms: list[float] = field(default_factory=list)
    region_latency_ms: dict[str, list[float]] = field(default_factory=dict)
    reads: int = 0
    hits: int = 0
    stale: int = 0
    stale_examples: list[str] = field(default_factory=list)


class Demo:
    """The workload: writers change order statuses, readers read order list pages."""

    def __init__(
        self,
        args: argparse.Namespace,
        settings: InvalidatorSettings,
        store: OrdersStore,
        logins: DemoLogins,
    ) -> None:
        self.args = args
        self.settings = settings
        self.regions = sorted(settings.regions)
        self.tally = Tally()
        self.stop = asyncio.Event()
        self.store = store
        self.relay = RunningRelay(store.engine, logins.relay_kafka)
        self.clients: dict[str, RedisClient] = {
            r: connect_redis(logins.cache_targets[r]) for r in self.regions
        }
        # The watch polls with clients of its own (one command at a time on each).
        self.watch_clients: dict[str, RedisClient] = {
            r: connect_redis(logins.cache_targets[r]) for r in self.regions
        }
        self.watch = GenerationWatch(self.watch_clients)
        # Per region and company: the newest data version whose purge was seen there.
        self.purged_version = {r: dict.fromkeys(self.store.company_ids, 0) for r in self.regions}
        self.company_locks = {c: asyncio.Lock() for c in self.store.company_ids}
        self.confirming: set[asyncio.Task[None]] = set()
        """Writes being committed or whose purge is being waited for."""
        self.write_errors: list[BaseException] = []
        """Writes that failed (the first stops the demo and is raised)."""
        self.hot = self.store.company_ids[: max(1, len(self.store.company_ids) // 10)]
        self.purged_before: dict[str, float] = {}

    async def writer(self, service: OrdersService, period: float) -> None:
        next_at = time.monotonic()
        while not self.stop.is_set():
            next_at += period
            company = self._idle_company()
            # One write in flight per company, so a generation change is this write's purge:
            # the lock is held until the purge was seen (by `_write`, in the background, so
            # that the writer keeps its rate whatever the commit's and the purge's latency).
            lock = self.company_locks[company]
            await lock.acquire()
            try:
                namespace = service.order_list(company)
                tokens = await asyncio.gather(
                    *(service.caches[r].read(namespace, "page:1") for r in self.regions)
                )
            except BaseException:
                lock.release()
                raise
            before: dict[str, bytes | None] = {
                r: read.generation for r, read in zip(self.regions, tokens, strict=True)
            }
            order_id = random.choice(self.store.order_ids[company])
            writing = asyncio.create_task(self._write(service, order_id, namespace, before, lock))
            self.confirming.add(writing)
            writing.add_done_callback(self._written)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def _idle_company(self) -> str:
        """A company with no write in flight (any company when every one has one)."""
        idle = [c for c in self.store.company_ids if not self.company_locks[c].locked()]
        return random.choice(idle or self.store.company_ids)

    async def _write(
        self,
        service: OrdersService,
        order_id: str,
        namespace: BoundNamespace,
        before: dict[str, bytes | None],
        lock: asyncio.Lock,
    ) -> None:
        """Commit the write, wait for its purge in every region, tally it, free its company."""
        try:
            # From before the transaction: e2e includes the commit and the relay's hop.
            started = time.monotonic()
            change, _ = await service.advance_status(order_id)
            self.tally.writes += 1
            landed = await self.watch.landed(
                generation_key(namespace), dict(before), timeout_s=PURGE_GIVE_UP_S
            )
            if landed is None:
                self.tally.unconfirmed += 1
                return
            self.tally.latency_ms.append((max(landed.values()) - started) * 1000)
            for region, at in landed.items():
                self.tally.region_latency_ms.setdefault(region, []).append((at - started) * 1000)
                self.purged_version[region][change.company_id] = change.company_version
        finally:
            lock.release()

    def _written(self, writing: asyncio.Task[None]) -> None:
        self.confirming.discard(writing)
        error = None if writing.cancelled() else writing.exception()
        if error is not None:
            self.write_errors.append(error)
            self.stop.set()

    async def reader(self, service: OrdersService, period: float) -> None:
        next_at = time.monotonic()
        while not self.stop.is_set():
            next_at += period
            region = random.choice(self.regions)
            pool = self.hot if random.random() < 0.8 else self.store.company_ids
            company = random.choice(pool)
            must_see = self.purged_version[region][company]
            page, hit = await service.list_page(region, company)
            self.tally.reads += 1
            self.tally.hits += hit
            if page_version(page) < must_see:
                self.tally.stale += 1
                if len(self.tally.stale_examples) < 5:
                    self.tally.stale_examples.append(
                        f"{region} {company}: read v{page_version(page)} after v{must_see} purged"
                    )
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def line(self, elapsed: float) -> str:
        purges = " ".join(f"{r} {n:.0f}" for r, n in self.purges().items())
        t = self.tally
        return (
            f"[{elapsed:5.1f}s] writes {t.writes} ({t.writes / max(elapsed, 1e-9):.0f}/s) | "
            f"purges {purges} | e2e p50 {percentile(t.latency_ms, 0.5):.1f} ms "
            f"p99 {percentile(t.latency_ms, 0.99):.1f} ms | {self.relay.line()} | reads {t.reads} "
            f"hit {100 * t.hits / max(t.reads, 1):.0f}% | stale {t.stale}"
        )

    def purges(self) -> dict[str, float]:
        """Namespaces purged per region since the workload started."""
        return {
            r: _stats(r).get("namespaces_purged", 0.0) - self.purged_before.get(r, 0.0)
            for r in self.regions
        }

    async def run(self) -> float:
        # Purges done before the workload (catching up on older events) are not counted.
        self.purged_before = {r: _stats(r).get("namespaces_purged", 0.0) for r in self.regions}
        caches = {r: CacheClient(client) for r, client in self.clients.items()}
        await self.watch.start()
        await self.relay.start()
        try:
            service = OrdersService(self.store, caches)
            write_period = self.args.writers / self.args.write_rate
            read_period = self.args.readers / self.args.read_rate
            tasks = [
                *(
                    asyncio.create_task(self.writer(service, write_period))
                    for _ in range(self.args.writers)
                ),
                *(
                    asyncio.create_task(self.reader(service, read_period))
                    for _ in range(self.args.readers)
                ),
            ]
            started = time.monotonic()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.args.seconds):
                    while not self.stop.is_set():
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self.stop.wait(), timeout=1.0)
                        self.relay.check_running()
                        print(self.line(time.monotonic() - started), flush=True)
            self.stop.set()
            await asyncio.gather(*tasks)
            elapsed = time.monotonic() - started
            await asyncio.gather(*self.confirming)
            if self.write_errors:
                raise RuntimeError(f"a write failed: {self.write_errors[0]!r}")
        finally:
            await self.relay.stop()
        await self.watch.stop()
        for client in [*self.clients.values(), *self.watch_clients.values()]:
            await client.aclose()
        return elapsed


def _stats_written_after(region: str, instant: float) -> bool:
    try:
        return (RUN_DIR / f"stats-{region}.json").stat().st_mtime > instant
    except OSError:
        return False


def _stats(region: str) -> dict[str, float]:
    try:
        loaded: dict[str, float] = json.loads((RUN_DIR / f"stats-{region}.json").read_text())
    except (OSError, ValueError):
        return {}
    return loaded


async def _caught_up(
    settings: InvalidatorSettings, invalidators: InvalidatorProcesses, stop: asyncio.Event
) -> bool:
    """Wait until both groups committed the log end; False if the user stopped first."""
    catalogue = settings.load_catalogue()
    deadline = time.monotonic() + 180
    regions = sorted(invalidators.processes)
    while True:
        invalidators.check_running()
        behind = {}
        for region in regions:
            own = invalidators.region_settings(region)
            lags = await group_lag(own.kafka, own.group_id(region), own.event_topics(catalogue))
            behind[region] = sum(p.lag for p in lags.values())
        if not any(behind.values()):
            # Wait for a stats file written after the catch-up, so that the workload's purge
            # count starts from a baseline that includes every catch-up purge.
            caught_up_at = time.time()
            while not all(_stats_written_after(r, caught_up_at) for r in regions):
                if stop.is_set():
                    return False
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the invalidators wrote no stats file in {RUN_DIR}")
                await asyncio.sleep(0.05)
            return True
        if time.monotonic() > deadline:
            raise RuntimeError(f"invalidators did not catch up within 180 s: {behind}")
        print(f"waiting for the invalidators to catch up: {behind} events behind", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        if stop.is_set():
            return False


async def _main(args: argparse.Namespace) -> int:
    settings = load_settings(EXAMPLE_CATALOGUE)  # the demo is the example domain's service
    if not settings.regions:
        raise SettingsError("INVALIDATOR_REGIONS is empty; run `make demo` (it starts the stack)")
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    engine = await fresh_engine(args.database, RUN_DIR)
    reader = page_reader(engine)
    try:
        store = OrdersStore(engine, companies=args.companies, orders_per_company=20, reader=reader)
        await store.create()
        return await _run(args, settings, store)
    finally:
        await reader.dispose()
        await engine.dispose()


async def _run(args: argparse.Namespace, settings: InvalidatorSettings, store: OrdersStore) -> int:
    """Start the invalidators, wait for them to catch up, run the workload; the exit status."""
    # Groups of the demo's own, started at the log end: a demo shows live purges, and its own
    # writes of earlier runs were all purged before those runs ended. Replaying what tests and
    # benchmarks published on a dev stack (millions of events) would only delay it.
    clusters = mirror_clusters(settings.regions) if args.topology == "mirrored" else None
    if args.secure:
        logins = secure_logins(settings)
    else:
        publish_to = region_settings(settings, HOME_REGION, clusters) if clusters else settings
        logins = plaintext_logins(settings, publish_to.kafka)
    invalidators = InvalidatorProcesses(
        settings,
        log_dir=RUN_DIR,
        group_prefix=logins.group_prefix,
        start_at_log_end=True,
        clusters=clusters,
    )
    demo = Demo(args, settings, store, logins)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, demo.stop.set)
    loop.add_signal_handler(signal.SIGTERM, demo.stop.set)
    try:
        await invalidators.start()
        for region in sorted(invalidators.processes):
            print(f"invalidator {region}: log {invalidators.log_path(region)}")
        if not await _caught_up(invalidators.settings, invalidators, demo.stop):
            return 130
        print(
            f"running the orders service on {args.database} for {args.seconds:.0f} s "
            "(Ctrl-C stops early)"
        )
        elapsed = await demo.run()
    finally:
        await invalidators.stop()  # each writes its final stats file as it stops
    return _report(demo, elapsed)


def _report(demo: Demo, elapsed: float) -> int:
    t = demo.tally
    summary = {
        "topology": demo.args.topology,
        "secure": demo.args.secure,
        "database": demo.args.database,
        "seconds": round(elapsed, 1),
        "writes_committed": t.writes,
        "writes_per_s": round(t.writes / elapsed, 1),
        "purges_per_region": demo.purges(),
        "e2e_latency_ms": {
            "p50": round(percentile(t.latency_ms, 0.5), 2),
            "p99": round(percentile(t.latency_ms, 0.99), 2),
            "max": round(max(t.latency_ms, default=0.0), 2),
        },
        "e2e_latency_ms_per_region": {
            region: {
                "p50": round(percentile(latencies, 0.5), 2),
                "p99": round(percentile(latencies, 0.99), 2),
            }
            for region, latencies in sorted(t.region_latency_ms.items())
        },
        "relay": demo.relay.summary(),
        "purges_unconfirmed": t.unconfirmed,
        "reads": t.reads,
        "hit_ratio": round(t.hits / max(t.reads, 1), 3),
        "stale_reads": t.stale,
    }
    (RUN_DIR / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\nsummary (also in .stack/demo/summary.json):")
    for name, value in summary.items():
        print(f"  {name:20} {value}")
    for example in t.stale_examples:
        print(f"  stale: {example}")
    healthy = t.writes > 0 and t.stale == 0 and t.unconfirmed == 0
    print("OK: every purge landed in every region, no stale read" if healthy else "FAILED")
    return 0 if healthy else 1


def main() -> int:
    """Parse the options and run the demo; the exit status is 0 only with no stale read."""
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to run (default 20)")
    parser.add_argument(
        "--database",
        choices=DATABASES,
        default="sqlite",
        help="the orders service's database: a SQLite file in .stack/demo (default) or the "
        "stack's PostgreSQL (OUTBOX_DATABASE_URL, schema orders_demo)",
    )
    parser.add_argument(
        "--topology",
        choices=TOPOLOGIES,
        default="one-cluster",
        help="one-cluster (default): every region's invalidator reads the stack's Kafka; "
        "mirrored: writes published in eu, each region reads its own cluster (MIRROR_KAFKA_*, "
        "from `stack.sh up --mirrored`)",
    )
    parser.add_argument(
        "--secure",
        action="store_true",
        help="the stack's secure profile (`stack.sh up --secure`): TLS everywhere, each client its "
        "own principal (one-cluster topology only)",
    )
    parser.add_argument("--companies", type=int, default=200)
    parser.add_argument("--writers", type=int, default=8, help="concurrent writers (default 8)")
    parser.add_argument(
        "--write-rate", type=float, default=100.0, help="writes per second (default 100)"
    )
    parser.add_argument("--readers", type=int, default=8, help="concurrent readers (default 8)")
    parser.add_argument(
        "--read-rate", type=float, default=1000.0, help="reads per second (default 1000)"
    )
    args = parser.parse_args()
    if args.secure and args.topology == "mirrored":
        parser.error("--secure runs on one cluster: not with --topology mirrored")
    try:
        return asyncio.run(_main(args))
    except (SettingsError, RuntimeError) as error:
        print(f"demo: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
