"""The outbox_e2e figure: a write's commit -> purged in every region, through the outbox against
publishing right after the commit.

Per database (SQLite, PostgreSQL) and rate, two paths with the same paced writers, each write
one service transaction (an order row), in alternating rounds (percentiles over every round's
probes; this shared host drifts between minutes more than the paths differ): `direct` commits,
then publishes its event with `EventPublisher` (what a service without an outbox does); `outbox`
commits the row and its event's outbox row together, and an `OutboxRelay` publishes it. SQLite's
relay runs in the writers' process on their engine (one connection, as the demo runs it) and is
woken by the commit there; PostgreSQL's runs in a process of its own (`bench.relay_process`),
woken by the NOTIFY the writers' process sends after each commit, as `outbox relay` runs beside
a service. On PostgreSQL, `debezium` (full runs): the outbox path with Debezium's connector on
Kafka Connect as the relay (`stack.sh up --debezium`), writing to a table of its own. Both
regions' invalidators run as processes. One write in `probe_every` is a probe on a new company:
it has landed when its company-orders generation key was written in every region (keyspace
notifications), timed from its transaction's start with its connection in hand (the commit
included: Debezium may stream a commit before the writer hears that it returned).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Column, MetaData, String, Table
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench.connect_worker import ConnectWorker, local_worker, outbox_connector
from bench.keyspace_watch import KeyspaceWatch
from bench.machine import percentiles_ms
from bench.orders_load import CompanyPicker
from bench.outbox import (
    against_bare,
    bare_producer_rate,
    beside_bare,
    database_url,
    write_pending_rows,
)
from bench.processes import BenchProcess, region_invalidators, running
from bench.progress import wait_stable
from bench.publishing import rate as events_per_s
from bench.relay_process import RelayProcess
from contracts.example_orders import COMPANY_ORDERS, OrderStatusChanged
from contracts.layout import generation_key
from contracts.topics import ORDERS
from invalidator.operators import end_offsets
from invalidator.settings import InvalidatorSettings
from producers import EventPublisher
from producers.outbox import (
    OutboxRelay,
    add_event,
    create_outbox_table,
    delete_sqlite_database,
    sqlite_engine,
)
from producers.outbox.debezium import DebeziumSettings
from producers.outbox.table import TABLE_NAME

SOURCE = "bench-outbox-e2e"
SQLITE_FILE = Path(".stack") / "bench" / "outbox_e2e.db"
POSTGRES_SCHEMA = "bench_outbox_e2e"
DEBEZIUM_SCHEMA = "bench_outbox_e2e_debezium"
"""Debezium's writers write here: an outbox table no relay of this figure reads."""
WRITERS = 64
"""The most writes in flight at once (a direct write waits for Kafka's acknowledgement)."""
PACE_S = 0.001
_ORDERS = Table(
    "bench_e2e_orders",
    MetaData(),
    Column("order_id", String(80), primary_key=True),
    Column("company_id", String(80), nullable=False),
)
PATHS = ("direct", "outbox")
_DEBEZIUM_RATE_TIMEOUT_S = 600.0
_WATCH_S = 0.05


@dataclass(frozen=True)
class OutboxE2EParams:
    """What the outbox_e2e figure runs."""

    rates: tuple[int, ...] = (200, 1_000)
    seconds: float = 20.0
    """Per path and rate, over all rounds."""
    rounds: int = 4
    """Each path's writes at a rate are split into rounds, the paths alternating round by
    round (who goes first alternates too); percentiles are over every round's probes."""
    databases: tuple[str, ...] = ("sqlite", "postgresql")
    probes_per_s: int = 100
    debezium: bool = True
    """Also through Debezium (PostgreSQL; a Kafka Connect worker: `stack.sh up --debezium`)."""
    debezium_rate_events: int = 25_000
    """Rows Debezium drains per round of its rate (written while its connector is paused)."""
    debezium_rate_rounds: int = 3
    """Rounds of Debezium's rate, each beside a bare producer's run, who goes first alternating
    (as the relay's rate in the outbox figure); the figure is the rounds' medians."""
    settle_timeout_s: float = 60.0
    """How long, after the last write, probes may take to land before they count as late."""


@dataclass
class Write:
    """A probe write: when its transaction started (connection in hand) and when its purge
    landed everywhere."""

    committed_at: float | None = None
    landed_at: float | None = None


async def run_outbox_e2e(
    settings: InvalidatorSettings, params: OutboxE2EParams, *, run_id: str, log_dir: Path
) -> dict[str, Any]:
    """Measure both paths per database and rate; the results per database and rate.

    settings: the endpoints.
    params: rates, durations, databases.
    run_id: unique to the run (ids, group prefix).
    log_dir: where the invalidators' logs go.
    """
    results: dict[str, Any] = {}
    settings, processes = await region_invalidators(
        settings, prefix=f"{run_id}-oe", log_dir=log_dir
    )
    watch = KeyspaceWatch(
        {region: settings.targets(region)[0] for region in settings.regions},
        key_pattern="{company:" + _probe_prefix(run_id) + "*",
    )
    async with running(processes):
        for region in sorted(settings.regions):
            await wait_stable(settings.kafka, settings.group_id(region), processes, members=1)
        await watch.start()
        try:
            for database in params.databases:
                async with _engine(database) as writers_engine:
                    results[database] = await _database_phases(
                        settings, params, database, writers_engine,
                        watch=watch, processes=processes, run_id=run_id, log_dir=log_dir,
                    )  # fmt: skip
            if params.debezium and "postgresql" in params.databases:
                results["debezium"], results["debezium_rate"] = await _debezium_phases(
                    settings, params, results["postgresql"],
                    watch=watch, processes=processes, run_id=run_id,
                )  # fmt: skip
        finally:
            await watch.stop()
        results["peak_rss_mb"] = {p.name: p.sample_rss() for p in processes}
    return results


async def _database_phases(
    settings: InvalidatorSettings,
    params: OutboxE2EParams,
    database: str,
    writers_engine: AsyncEngine,
    *,
    watch: KeyspaceWatch,
    processes: list[BenchProcess],
    run_id: str,
    log_dir: Path,
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    publisher = EventPublisher(settings.kafka, source=SOURCE)
    await publisher.start()
    try:
        async with _relay(database, writers_engine, settings, log_dir=log_dir) as relay:
            for rate in params.rates:
                rounds: dict[str, list[_Phase]] = {path: [] for path in PATHS}
                for n in range(params.rounds):
                    # Who goes first alternates: neither path gets the quieter minutes.
                    for path in PATHS if n % 2 == 0 else PATHS[::-1]:
                        source = f"{database[:2]}{path[0]}{rate}r{n}"
                        print(
                            f"[outbox_e2e] {database} {path} at {rate:,} writes/s, round {n + 1}",
                            flush=True,
                        )
                        before = relay.published()
                        phase = await _phase(
                            writers_engine, params, rate, run_id, source,
                            seconds=params.seconds / params.rounds,
                            outbox=path == "outbox", publisher=publisher, watch=watch,
                            checks=[*(p.check_running for p in processes), relay.check],
                        )  # fmt: skip
                        if path == "outbox":
                            phase.relayed = await relay.published_since(
                                before, at_least=phase.writes
                            )
                        rounds[path].append(phase)
                at_rate: dict[str, Any] = {path: _pooled(rounds[path]) for path in PATHS}
                for path in PATHS:
                    print(f"  {path}: {at_rate[path]}", flush=True)
                at_rate |= _against_direct(at_rate["outbox"], at_rate["direct"])
                figures[str(rate)] = at_rate
        figures["relay"] = relay.final_stats
    finally:
        await publisher.stop()
    return figures


class _Relay:
    """The figure's relay: SQLite's in this process, on the writers' engine (as the demo runs
    it); PostgreSQL's a process of its own (`bench.relay_process`), as `outbox relay` runs
    beside a service. Either way its published count and stage stats."""

    def __init__(self, in_process: OutboxRelay | None, process: RelayProcess | None) -> None:
        self._in_process = in_process
        self._process = process
        self.task: asyncio.Task[None] | None = None
        """The in-process relay's `run`."""
        self.final_stats: dict[str, Any] = {}
        """Its stats once stopped."""

    def published(self) -> int:
        """Rows published so far (the process's: as of its last stats file)."""
        if self._in_process is not None:
            return self._in_process.stats.published
        assert self._process is not None
        return self._process.published()

    def check(self) -> None:
        """Raise if it ended."""
        if self.task is not None and self.task.done():
            raise RuntimeError(f"the outbox relay ended: {self.task.exception()!r}")
        if self._process is not None:
            self._process.process.check_running()

    async def published_since(self, before: int, *, at_least: int) -> int:
        """Rows published since the count was `before`, once at least `at_least` were (every
        row of a phase is relayed: a RuntimeError after RELAYED_WITHIN_S)."""
        deadline = time.monotonic() + RELAYED_WITHIN_S
        while (published := self.published() - before) < at_least:
            self.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the relay published {published} of {at_least} rows")
            await asyncio.sleep(_WATCH_S)  # the look's interval, not a synchronisation
        return published


RELAYED_WITHIN_S = 30.0


@contextlib.asynccontextmanager
async def _relay(
    database: str, engine: AsyncEngine, settings: InvalidatorSettings, *, log_dir: Path
) -> AsyncIterator[_Relay]:
    if database == "postgresql":
        process = RelayProcess(POSTGRES_SCHEMA, log_dir=log_dir)
        relay = _Relay(None, process)
        async with running([process.process]):
            yield relay
        relay.final_stats = process.stats()
        return
    in_process = OutboxRelay(engine, settings.kafka, client_id=SOURCE)
    relay = _Relay(in_process, None)
    await in_process.start()
    relay.task = asyncio.create_task(in_process.run(), name="outbox-relay")
    try:
        yield relay
    finally:
        in_process.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(relay.task, timeout=30)
        await in_process.stop_producer()
        relay.final_stats = in_process.stats.as_dict()


async def _debezium_phases(
    settings: InvalidatorSettings,
    params: OutboxE2EParams,
    postgresql: dict[str, Any],
    *,
    watch: KeyspaceWatch,
    processes: list[BenchProcess],
    run_id: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The outbox path on PostgreSQL with Debezium as the relay (an outbox table of its own, a
    connector and slot of this run), at each rate, against the direct path measured before;
    and Debezium's drain rate."""
    worker = await asyncio.to_thread(local_worker)
    figures: dict[str, Any] = {}
    async with _postgres_engine(DEBEZIUM_SCHEMA, pool_size=WRITERS) as engine:
        connector = DebeziumSettings(
            database_url=database_url("postgresql"),
            table=f"{DEBEZIUM_SCHEMA}.{TABLE_NAME}",
            name=f"bench-outbox-{run_id}",
            slot_name=f"dbz_bench_{run_id}".lower(),
        )
        print(f"[outbox_e2e] starting the Debezium connector on {connector.table}", flush=True)
        async with outbox_connector(worker, connector):
            for rate in params.rates:
                print(f"[outbox_e2e] postgresql debezium at {rate:,} writes/s", flush=True)
                through = _pooled(
                    [
                        await _phase(
                            engine, params, rate, run_id, f"dz{rate}",
                            seconds=params.seconds, outbox=True, publisher=None, watch=watch,
                            checks=[p.check_running for p in processes],
                        )
                    ]
                )  # fmt: skip
                print(f"  {through}", flush=True)
                direct = postgresql[str(rate)]["direct"]
                figures[str(rate)] = {"debezium": through} | _against_direct(through, direct)
            drained = await _debezium_rate(
                worker, connector, engine, settings, params, run_id=run_id
            )
    return figures, drained


async def _debezium_rate(
    worker: ConnectWorker,
    connector: DebeziumSettings,
    engine: AsyncEngine,
    settings: InvalidatorSettings,
    params: OutboxE2EParams,
    *,
    run_id: str,
) -> dict[str, Any]:
    """Debezium's drain rate against a bare idempotent producer's (the limit the relay's rate is
    measured against), in `params.debezium_rate_rounds` rounds: in each, rows written while the
    connector is paused, then, who goes first alternating, the drain timed from the connector's
    resume until all are on the topic, and the bare producer sending as many records. Each
    round's rates and ratio, and their medians."""
    events = params.debezium_rate_events
    rounds = []
    for n in range(params.debezium_rate_rounds):
        print(
            f"[outbox_e2e] debezium rate, round {n + 1}: {events:,} rows written while paused",
            flush=True,
        )
        await worker.pause(connector.name)
        await write_pending_rows(engine, events, run_id=f"{run_id}-dzrate{n}")
        drained, bare = await beside_bare(
            n,
            partial(_debezium_drain, worker, connector, settings, events),
            partial(bare_producer_rate, settings, events, batch_size=500, run_id=f"{run_id}-dz{n}"),
        )
        rounds.append(
            {
                "debezium_events_per_s": drained,
                "bare_events_per_s": bare["events_per_s"],
                "ratio": round(drained / bare["events_per_s"], 3),
            }
        )
        print(f"  {rounds[-1]}", flush=True)
    return against_bare(rounds, "debezium_events_per_s", events_per_round=events)


async def _debezium_drain(
    worker: ConnectWorker, connector: DebeziumSettings, settings: InvalidatorSettings, events: int
) -> int:
    """Resume the paused connector; its rate until the `events` rows written meanwhile are on
    the topic, records/s."""
    before = await _on_topic(settings)
    started = time.perf_counter()
    await worker.resume(connector.name)
    deadline = started + _DEBEZIUM_RATE_TIMEOUT_S
    while (on_topic := await _on_topic(settings) - before) < events:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"Debezium published {on_topic} of {events} rows in time")
        await asyncio.sleep(_WATCH_S)  # the look's interval, not a synchronisation
    return int(events_per_s(events, time.perf_counter() - started)["events_per_s"])


async def _on_topic(settings: InvalidatorSettings) -> int:
    """How many records the orders topic has had (the sum of its partitions' log ends)."""
    return sum((await end_offsets(settings.kafka, [ORDERS])).values())


def _against_direct(path: dict[str, Any], direct: dict[str, Any]) -> dict[str, Any]:
    """A path's latencies against the direct path's: added ms and ratios per quantile."""
    return {
        "added_ms": {q: round(path["ms"][q] - direct["ms"][q], 3) for q in ("p50", "p99", "p999")},
        "ratios": {
            q: round(path["ms"][q] / direct["ms"][q], 3) if direct["ms"][q] else None
            for q in ("p50", "p99", "p999")
        },
    }


def _probe_prefix(run_id: str) -> str:
    """What starts the probes' company ids (the keyspace watch sees only theirs)."""
    return f"{run_id}-oep"


@dataclass
class _Phase:
    """One phase of paced writes on one path."""

    writes: int
    seconds: float
    cpu_s: float
    """The writers' process's CPU seconds meanwhile."""
    probes: int
    landed_s: list[float]
    """Each landed probe's commit -> landed, seconds."""
    relayed: int | None = None
    """Outbox path: the rows the relay published for the phase."""


def _pooled(phases: list[_Phase]) -> dict[str, Any]:
    """One path's figures over its phases: every probe's latency in one set of percentiles."""
    writes = sum(p.writes for p in phases)
    seconds = sum(p.seconds for p in phases)
    landed = [sample for p in phases for sample in p.landed_s]
    probes = sum(p.probes for p in phases)
    figures: dict[str, Any] = {
        "writes": writes,
        "rounds": len(phases),
        "achieved_per_s": round(writes / seconds, 1),
        # The writers' process's CPU seconds per second while writing (1.0: a whole core).
        "writer_process_cpu_share": round(sum(p.cpu_s for p in phases) / seconds, 3),
        "probes": probes,
        "late": probes - len(landed),
        "ms": percentiles_ms(landed),
    }
    if any(p.relayed is not None for p in phases):
        figures["relayed"] = sum(p.relayed or 0 for p in phases)
    return figures


async def _phase(
    engine: AsyncEngine,
    params: OutboxE2EParams,
    rate: int,
    run_id: str,
    source: str,
    *,
    seconds: float,
    outbox: bool,
    publisher: EventPublisher | None,
    watch: KeyspaceWatch,
    checks: list[Callable[[], None]],
) -> _Phase:
    """Paced writes for `seconds`; the probes' commit -> landed latencies."""
    probe_every = max(1, rate // params.probes_per_s)
    background = CompanyPicker("zipf", run_id=f"{run_id}-oe{source}")
    companies = iter(background.pick(int(rate * seconds) + 1))
    probes: dict[str, Write] = {}
    in_flight = asyncio.Semaphore(WRITERS)
    tasks: set[asyncio.Task[None]] = set()
    failures: list[BaseException] = []

    async def write(n: int) -> None:
        probe = n % probe_every == 0
        company = f"{_probe_prefix(run_id)}{source}-{n}" if probe else next(companies)
        record = Write()
        if probe:
            probes[company] = record
        try:
            await _write(
                engine, company, f"{run_id}-oe{source}-o{n}", record,
                publisher=publisher, outbox=outbox,
            )  # fmt: skip
        except BaseException as error:
            failures.append(error)
            raise
        finally:
            in_flight.release()

    started = time.monotonic()
    cpu_started = time.process_time()
    total = int(rate * seconds)
    n = 0
    while n < total:
        due = min(total, int((time.monotonic() - started) * rate) + 1)
        while n < due:
            await in_flight.acquire()
            task = asyncio.create_task(write(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        if failures:
            raise RuntimeError(f"a write failed: {failures[0]!r}")
        await asyncio.sleep(PACE_S)  # pacing, not synchronisation
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    cpu_s = time.process_time() - cpu_started
    await _wait_landed(probes, watch, params.settle_timeout_s, checks)
    seen = [
        r.landed_at - r.committed_at
        for r in probes.values()
        if r.landed_at is not None and r.committed_at is not None
    ]
    return _Phase(total, elapsed, cpu_s, len(probes), seen)


async def _write(
    engine: AsyncEngine,
    company: str,
    order_id: str,
    record: Write,
    *,
    publisher: EventPublisher | None,
    outbox: bool,
) -> None:
    """One service transaction; its event in the outbox, or published after the commit."""
    event = OrderStatusChanged(
        order_id=order_id, company_id=company, old_status="placed", new_status="paid"
    )
    async with engine.begin() as connection:
        # From the transaction's start, its connection in hand: a commit can be streamed (by
        # Debezium) before the writer hears that it returned.
        record.committed_at = time.monotonic()
        await connection.execute(_ORDERS.insert().values(order_id=order_id, company_id=company))
        if outbox:
            await add_event(connection, event, source=SOURCE, tenant="bench", aggregate_version=1)
    if not outbox:
        assert publisher is not None, "the direct path publishes"
        await publisher.publish(event, tenant="bench", aggregate_version=1)


async def _wait_landed(
    probes: dict[str, Write],
    watch: KeyspaceWatch,
    timeout_s: float,
    checks: list[Callable[[], None]],
) -> None:
    """Wait up to `timeout_s` in all for every probe's purge to land in every region."""
    deadline = time.monotonic() + timeout_s
    for company, record in probes.items():
        key = generation_key(COMPANY_ORDERS.bind(company_id=company))
        record.landed_at = await watch.landed(key, timeout_s=max(0.0, deadline - time.monotonic()))
        for check in checks:
            check()


@contextlib.asynccontextmanager
async def _engine(database: str) -> AsyncIterator[AsyncEngine]:
    """The writers' engine, on an empty database (SQLite's relay shares its one connection)."""
    if database == "postgresql":
        async with _postgres_engine(POSTGRES_SCHEMA, pool_size=WRITERS) as engine:
            yield engine
        return
    SQLITE_FILE.parent.mkdir(parents=True, exist_ok=True)
    delete_sqlite_database(SQLITE_FILE)
    engine = sqlite_engine(f"sqlite+aiosqlite:///{SQLITE_FILE.resolve()}")
    try:
        await _create_tables(engine)
        yield engine
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def _postgres_engine(schema: str, *, pool_size: int) -> AsyncIterator[AsyncEngine]:
    """An engine on `schema` of the stack's PostgreSQL, the schema made anew with the figure's
    tables."""
    engine = create_async_engine(
        database_url("postgresql"),
        pool_size=pool_size,
        execution_options={"schema_translate_map": {None: schema}},
    )
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        await _create_tables(engine)
        yield engine
    finally:
        await engine.dispose()


async def _create_tables(engine: AsyncEngine) -> None:
    await create_outbox_table(engine)
    async with engine.begin() as connection:
        await connection.run_sync(_ORDERS.metadata.create_all)
