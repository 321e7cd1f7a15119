"""The outbox figure: what the transactional outbox costs a write, and how fast its relay drains.

Write latency: a service transaction (one order row inserted) with and without its event's
outbox row (`add_event`), alternating round by round, on SQLite (a file) and on PostgreSQL
(`OUTBOX_DATABASE_URL`, the stack's). Relay: in each round, N rows written through `add_events`,
then timed while `OutboxRelay.run` publishes them all (as `outbox relay` does); the limit, in the
same round, is a bare aiokafka producer (acks=all, idempotent) sending N pre-serialised orders
records, one gather per batch of the relay's size. Which of the two goes first alternates round
by round; the figure is the median of the rounds' ratios (this shared host's speed drifts more
between minutes than between the two halves of a round).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Column, MetaData, String, Table
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench.orders_load import CompanyPicker, bare_producer, order_records
from bench.publishing import rate
from contracts.example_orders import OrderStatusChanged
from contracts.percentiles import percentile
from invalidator.settings import InvalidatorSettings
from producers import EventToPublish
from producers.outbox import (
    OutboxRelay,
    add_event,
    add_events,
    create_outbox_table,
    delete_sqlite_database,
    sqlite_engine,
)

SOURCE = "bench-outbox"
SQLITE_FILE = Path(".stack") / "bench" / "outbox.db"
_ORDERS = Table(
    "bench_outbox_orders",
    MetaData(),
    Column("order_id", String(80), primary_key=True),
    Column("status", String(16), nullable=False),
)
_ROW_CHUNK = 1_000
_RELAY_TIMEOUT_S = 600.0
_WATCH_S = 0.005
"""How often the relay's count is looked at (its granularity is a batch, 500 rows)."""


@dataclass(frozen=True)
class OutboxParams:
    """What the outbox figure runs."""

    writes: int = 5_000
    """Service transactions per variant and database."""
    rounds: int = 10
    """The writes are split into rounds, alternating with and without the outbox row."""
    relay_events: int = 20_000
    """Rows the relay publishes per round (and records the bare producer sends)."""
    relay_rounds: int = 3
    batch_size: int = 500
    databases: tuple[str, ...] = ("sqlite", "postgresql")


def database_url(database: str) -> str:
    """The SQLAlchemy URL the figure uses for `database` (`sqlite` or `postgresql`)."""
    if database == "sqlite":
        return f"sqlite+aiosqlite:///{SQLITE_FILE.resolve()}"
    url = os.environ.get("OUTBOX_DATABASE_URL")
    if not url:
        raise RuntimeError("OUTBOX_DATABASE_URL is not set: run it through `make bench`")
    return url


async def run_outbox(
    settings: InvalidatorSettings, params: OutboxParams, *, run_id: str
) -> dict[str, Any]:
    """Measure write latency per database and the relay against the bare producer.

    settings: the brokers.
    params: the sizes.
    run_id: unique to the run (ids).
    """
    results: dict[str, Any] = {}
    SQLITE_FILE.parent.mkdir(parents=True, exist_ok=True)
    delete_sqlite_database(SQLITE_FILE)
    for database in params.databases:
        engine = (
            sqlite_engine(database_url(database), pool_size=2)
            if database == "sqlite"
            else create_async_engine(database_url(database))
        )
        try:
            await create_outbox_table(engine)
            async with engine.begin() as connection:
                await connection.run_sync(_ORDERS.metadata.create_all)
            writes = await _write_latency(engine, params, run_id=f"{run_id}-{database}")
            relay = await _relay_rounds(engine, settings, params, run_id=f"{run_id}-{database}")
            results[database] = {"write": writes, "relay": relay}
        finally:
            await engine.dispose()
        write = results[database]["write"]
        print(
            f"[outbox] {database}: write p50 {write['without']['p50_ms']} -> "
            f"{write['with_outbox']['p50_ms']} ms ({write['p50_ratio']}x) | relay "
            f"{relay['events_per_s']:,}/s vs bare {relay['bare_events_per_s']:,}/s "
            f"({relay['ratio_to_bare']}x, median of {len(relay['rounds'])} rounds)",
            flush=True,
        )
    return results


async def _write_latency(
    engine: AsyncEngine, params: OutboxParams, *, run_id: str
) -> dict[str, Any]:
    samples: dict[str, list[float]] = {"without": [], "with_outbox": []}
    per_round = max(1, params.writes // params.rounds)
    n = 0
    for _ in range(params.rounds):
        for variant, values in samples.items():
            for _ in range(per_round):
                order_id = f"{run_id}-o{n}"
                n += 1
                started = time.perf_counter()
                async with engine.begin() as connection:
                    await connection.execute(
                        _ORDERS.insert().values(order_id=order_id, status="paid")
                    )
                    if variant == "with_outbox":
                        await add_event(
                            connection, _event(order_id, run_id), source=SOURCE,
                            tenant="bench", aggregate_version=1,
                        )  # fmt: skip
                values.append((time.perf_counter() - started) * 1000)
    figures = {
        variant: {
            "transactions": len(values),
            "p50_ms": round(percentile(values, 0.5), 3),
            "p99_ms": round(percentile(values, 0.99), 3),
        }
        for variant, values in samples.items()
    }
    without, with_outbox = figures["without"], figures["with_outbox"]
    return {
        **figures,
        "p50_ratio": round(with_outbox["p50_ms"] / without["p50_ms"], 3),
        "p99_ratio": round(with_outbox["p99_ms"] / without["p99_ms"], 3),
    }


async def _relay_rounds(
    engine: AsyncEngine, settings: InvalidatorSettings, params: OutboxParams, *, run_id: str
) -> dict[str, Any]:
    """The relay against the bare producer, `params.relay_rounds` rounds, who goes first
    alternating: each round's rates and ratio, and their medians."""
    rounds = []
    for n in range(params.relay_rounds):
        relay, bare = await beside_bare(
            n,
            partial(_relay_rate, engine, settings, params, run_id=f"{run_id}-{n}"),
            partial(
                bare_producer_rate, settings, params.relay_events, batch_size=params.batch_size,
                run_id=f"{run_id}-{n}",
            ),
        )  # fmt: skip
        rounds.append(
            {
                "relay_events_per_s": relay["events_per_s"],
                "bare_events_per_s": bare["events_per_s"],
                "ratio": round(relay["events_per_s"] / bare["events_per_s"], 3),
                "stages_ms": relay["stages_ms"],
            }
        )
    return against_bare(rounds, "relay_events_per_s", events_per_round=params.relay_events) | {
        "batch_size": params.batch_size
    }


Measured = TypeVar("Measured")


async def beside_bare(
    round_: int,
    measure: Callable[[], Awaitable[Measured]],
    bare: Callable[[], Awaitable[dict[str, Any]]],
) -> tuple[Measured, dict[str, Any]]:
    """One round of a rate measured beside a bare producer's run: what `measure` and `bare`
    return, `measure` going first in even rounds and second in odd ones (neither gets the
    quieter minutes)."""
    if round_ % 2 == 0:
        measured = await measure()
        return measured, await bare()
    baseline = await bare()
    return await measure(), baseline


def against_bare(
    rounds: list[dict[str, Any]], rate_key: str, *, events_per_round: int
) -> dict[str, Any]:
    """A rate measured in rounds, each beside a bare producer's run (each round's `rate_key`,
    `bare_events_per_s` and `ratio`): the medians of the rates, of the bare producer's and of
    the ratios, with the rounds."""
    return {
        "events_per_s": round(statistics.median(r[rate_key] for r in rounds)),
        "bare_events_per_s": round(statistics.median(r["bare_events_per_s"] for r in rounds)),
        "ratio_to_bare": round(statistics.median(r["ratio"] for r in rounds), 3),
        "events_per_round": events_per_round,
        "rounds": rounds,
    }


async def _relay_rate(
    engine: AsyncEngine, settings: InvalidatorSettings, params: OutboxParams, *, run_id: str
) -> dict[str, Any]:
    relay = OutboxRelay(engine, settings.kafka, batch_size=params.batch_size)
    await relay.start()
    try:
        while await relay.relay_once():  # rows left by the write latency runs, not timed
            pass
        await write_pending_rows(engine, params.relay_events, run_id=f"{run_id}-relay")
        before = relay.stats.published
        started = time.perf_counter()
        running = asyncio.create_task(relay.run(), name="outbox-relay")
        deadline = started + _RELAY_TIMEOUT_S
        # Timed as the relay runs (`outbox relay`): until every row was acknowledged.
        while relay.stats.published - before < params.relay_events:
            if running.done() or time.perf_counter() > deadline:
                raise RuntimeError(
                    f"the relay published {relay.stats.published - before} of "
                    f"{params.relay_events} rows: {running!r}"
                )
            await asyncio.sleep(_WATCH_S)
        seconds = time.perf_counter() - started
        relay.stop()
        await running
    finally:
        await relay.stop_producer()
    stages = {k: v for k, v in relay.stats.as_dict().items() if k.endswith("_p50")}
    return (
        rate(relay.stats.published - before, seconds)
        | {"batch_size": params.batch_size}
        | {"stages_ms": stages}
    )


async def write_pending_rows(engine: AsyncEngine, count: int, *, run_id: str) -> None:
    """Add `count` outbox rows (zipf companies), a thousand per transaction."""
    companies = CompanyPicker("zipf", run_id=run_id).pick(count)
    for first in range(0, count, _ROW_CHUNK):
        async with engine.begin() as connection:
            await add_events(
                connection,
                [
                    EventToPublish(
                        _event(f"{run_id}-r{n}", companies[n]), tenant="bench", aggregate_version=1
                    )
                    for n in range(first, min(first + _ROW_CHUNK, count))
                ],
                source=SOURCE,
            )


async def bare_producer_rate(
    settings: InvalidatorSettings, events: int, *, batch_size: int, run_id: str
) -> dict[str, Any]:
    """A bare idempotent aiokafka producer sending `events` pre-serialised orders records, one
    gather per `batch_size`: the limit of a relay's rate."""
    records = order_records(
        CompanyPicker("zipf", run_id=f"{run_id}-obare"), events, run_id=f"{run_id}-obare", tag="p"
    )
    producer = bare_producer(settings.kafka)
    await producer.start()
    try:
        started = time.perf_counter()
        for first in range(0, len(records), batch_size):
            confirmations = [
                await producer.send(r.topic, r.value, key=r.key, headers=r.headers)
                for r in records[first : first + batch_size]
            ]
            await asyncio.gather(*confirmations)
        seconds = time.perf_counter() - started
    finally:
        await producer.stop()
    return rate(len(records), seconds) | {"batch_size": batch_size}


def _event(order_id: str, company_id: str) -> OrderStatusChanged:
    return OrderStatusChanged(
        order_id=order_id, company_id=company_id, old_status="placed", new_status="paid"
    )
