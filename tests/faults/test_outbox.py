"""The transactional outbox under faults, per event id, on SQLite and PostgreSQL: a service
SIGKILLed right after its commit, the relay SIGKILLed between publish and mark, the broker down
while writes continue. After recovery every committed write's event was published and purged in
every region; a rolled-back transaction publishes nothing.

A committed write is a row of the service's own table (`outbox_orders.ORDERS`), read back after
the fault: its event must be purged in both regions (`accounting.account`). Time to recover:
from the fault's end (the relay started, restarted or the broker back) to every event purged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from sqlalchemy import make_url, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts import KafkaConnection
from contracts.events import HEADER_EVENT_ID
from contracts.example_orders import CATALOGUE
from contracts.namespaces import BoundNamespace
from contracts.topics import ORDERS
from invalidator import InvalidatorSettings
from invalidator.operators import end_offsets
from producers import RedisClient
from producers.outbox import OUTBOX_TABLE, OutboxRelay
from tests.faults.accounting import Outcome, record_outcome, scaled, settled
from tests.faults.outbox_orders import committed_orders, create_tables, write_order
from tests.faults.processes import (
    exited,
    kill_if_running,
    spawn,
    stop_process,
)
from tests.faults.proxy import TcpProxy
from tests.faults.services import KAFKA, restored_afterwards, service_process
from tests.integration.invalidators import running_invalidators
from tests.integration.kafka_tools import records_to_end
from tests.logged_lines import LoggedLines
from tests.waiting import wait_until

RECOVER_WITHIN_S = 180
RELAY_POLL_S = 0.05
WRITES = scaled(200, 2000)
"""Committed writes before a fault (and, where writes continue, again after it)."""
OUTAGE_S = scaled(5, 15)
HELD_BATCH = 100
"""The batch size of the relay killed between publish and mark."""
OUTAGE_POLL_S = 4.0
"""The poll of the relay cut off from its database: its retries come this often, and after
the outage a write must be relayed in half of it (woken by NOTIFY)."""
WRITE_PAUSE_S = 0.005
"""Between two writes of a service writing through a fault: paces it at most ~200 writes/s."""


@pytest.fixture
async def outbox_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the test's database, with the outbox table and the service's own."""
    engine = create_async_engine(database_url)
    await create_tables(engine)
    yield engine
    await engine.dispose()


@contextlib.asynccontextmanager
async def running_relay(engine: AsyncEngine, kafka: KafkaConnection) -> AsyncIterator[OutboxRelay]:
    """An outbox relay running in this process until the block ends."""
    relay = OutboxRelay(engine, kafka, poll_interval_s=RELAY_POLL_S)
    await relay.start()
    running = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        relay.stop()
        await asyncio.wait_for(running, timeout=60)
        await relay.stop_producer()


async def settle_and_account(
    scenario: str,
    published: Mapping[str, BoundNamespace],
    redis_clients: dict[str, RedisClient],
    *,
    fault_ended: float,
) -> None:
    """Wait until every event of `published` is purged in every region (or the deadline),
    record the outcome, then fail naming the ids that are not.

    published: event id -> the namespace its event purges (the committed writes).
    fault_ended: monotonic time the fault ended (time to recover is counted from it).
    """

    accounting, recover_s = await settled(
        published, redis_clients, since=fault_ended, within=RECOVER_WITHIN_S
    )
    record_outcome(accounting.outcome(scenario, recover_s))
    accounting.assert_nothing_lost()


def _event_ids(records: list[object]) -> list[str]:
    return [
        headers[HEADER_EVENT_ID].decode()
        for record in records
        if HEADER_EVENT_ID in (headers := dict(record.headers or ()))  # type: ignore[attr-defined]
    ]


async def _sigkill_once_marked(
    process: subprocess.Popen[bytes], marker: Path, log: Path, *, what: str
) -> None:
    """Wait until `process` writes `marker` (failing, with its log, if it exits first), then
    SIGKILL it there."""

    async def marked_or_exited() -> bool:
        return marker.exists() or await exited(process)

    await wait_until(marked_or_exited, within=120, what=f"{what} ({log})")
    assert marker.exists(), f"the process exited before {what}: {log.read_text()[-3000:]}"
    await stop_process(process, signal.SIGKILL, within=30, what=f"the SIGKILL after {what}")


def _backend(database_url: str) -> str:
    return database_url.split("+", 1)[0].split(":", 1)[0]


async def test_service_sigkilled_right_after_its_commit_loses_no_event(
    database_url: str,
    outbox_engine: AsyncEngine,
    settings: InvalidatorSettings,
    redis_clients: dict[str, RedisClient],
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    marker = tmp_path / "committed"
    log = tmp_path / "service.log"
    args = ["tests/faults/outbox_service.py", database_url, run, str(WRITES), str(marker)]
    service = spawn(args, settings, log)
    try:
        await _sigkill_once_marked(service, marker, log, what="the commits")
    finally:
        kill_if_running(service)

    published = await committed_orders(outbox_engine, run)
    assert len(published) == WRITES, f"{len(published)} of {WRITES} commits in the database"
    async with (
        running_invalidators(settings, CATALOGUE),
        running_relay(outbox_engine, settings.kafka),
    ):
        await settle_and_account(
            f"outbox: service SIGKILLed after commit ({_backend(database_url)})",
            published,
            redis_clients,
            fault_ended=time.monotonic(),
        )


async def test_relay_sigkilled_between_publish_and_mark_publishes_again(
    database_url: str,
    outbox_engine: AsyncEngine,
    settings: InvalidatorSettings,
    redis_clients: dict[str, RedisClient],
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    async with outbox_engine.begin() as connection:
        for n in range(WRITES):
            await write_order(connection, run, n)
    published = await committed_orders(outbox_engine, run)
    start = await end_offsets(settings.kafka, [ORDERS])
    marker = tmp_path / "flushed"
    log = tmp_path / "relay.log"
    relay_env = {
        "OUTBOX_DATABASE_URL": database_url,
        "OUTBOX_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "OUTBOX_BATCH_SIZE": str(HELD_BATCH),
        "OUTBOX_POLL_INTERVAL_S": str(RELAY_POLL_S),
    }
    held = spawn(["tests/faults/hold_before_mark.py", str(marker)], settings, log, env=relay_env)
    try:
        await _sigkill_once_marked(held, marker, log, what="the first batch")
    finally:
        kill_if_running(held)

    flushed = set(_event_ids(await records_to_end(settings.kafka, start))) & set(published)
    assert flushed, "the held relay published none of the run's events before the kill"
    async with outbox_engine.connect() as connection:
        pending = {
            event_id
            for (event_id,) in await connection.execute(
                select(OUTBOX_TABLE.c.event_id).where(OUTBOX_TABLE.c.published_at.is_(None))
            )
        }
    assert flushed <= pending, "rows were marked before the relay was killed"

    # The invalidators start at the log end, after the first publication: only the restarted
    # relay's publication can purge the flushed batch.
    async with running_invalidators(settings, CATALOGUE):
        restarted = spawn(["-m", "producers.outbox.cli", "relay"], settings, log, env=relay_env)
        try:
            await settle_and_account(
                f"outbox: relay SIGKILLed between publish and mark ({_backend(database_url)})",
                published,
                redis_clients,
                fault_ended=time.monotonic(),
            )
            status = await stop_process(
                restarted, signal.SIGTERM, within=60, what="the relay to stop on SIGTERM"
            )
            assert status == 0, log.read_text()[-3000:]
        finally:
            kill_if_running(restarted)
    on_topic = _event_ids(await records_to_end(settings.kafka, start))
    once = [e for e in flushed if on_topic.count(e) < 2]
    assert not once, f"published once only, although the relay was killed before the mark: {once}"


@pytest.mark.long
async def test_broker_down_while_writes_continue_loses_no_event(
    database_url: str,
    outbox_engine: AsyncEngine,
    settings: InvalidatorSettings,
    redis_clients: dict[str, RedisClient],
) -> None:
    broker = service_process(KAFKA)
    run = uuid.uuid4().hex[:8]
    written = 0
    stop_writing = asyncio.Event()

    async def write_stream() -> None:
        nonlocal written
        while not stop_writing.is_set():
            async with outbox_engine.begin() as connection:
                await write_order(connection, run, written)
            written += 1
            await asyncio.sleep(WRITE_PAUSE_S)  # pacing, not a synchronisation

    async def written_at_least(count: int) -> bool:
        return written >= count

    async with (
        restored_afterwards(broker),
        running_invalidators(settings, CATALOGUE),
        running_relay(outbox_engine, settings.kafka),
    ):
        writing = asyncio.create_task(write_stream())
        try:
            await wait_until(lambda: written_at_least(WRITES), within=120, what="writes")
            await broker.stop()
            at_stop = written
            await asyncio.sleep(OUTAGE_S)  # the outage's duration, not a synchronisation
            during_outage = written - at_stop
            await broker.start_again()
            fault_ended = time.monotonic()
            resume_at = written + WRITES
            await wait_until(lambda: written_at_least(resume_at), within=120, what="writes after")
        finally:
            stop_writing.set()
            await asyncio.wait_for(writing, timeout=60)
        assert during_outage > 0, "no write committed while the broker was down"
        published = await committed_orders(outbox_engine, run)
        await settle_and_account(
            f"outbox: broker down {OUTAGE_S} s while writing ({_backend(database_url)})",
            published,
            redis_clients,
            fault_ended=fault_ended,
        )


async def test_a_rolled_back_transaction_publishes_nothing(
    database_url: str, outbox_engine: AsyncEngine, settings: InvalidatorSettings
) -> None:
    run = uuid.uuid4().hex[:8]
    start = await end_offsets(settings.kafka, [ORDERS])
    async with outbox_engine.connect() as connection:
        transaction = await connection.begin()
        rolled_back = await write_order(connection, run, 0)
        await transaction.rollback()
    async with outbox_engine.begin() as connection:
        committed = await write_order(connection, run, 1)

    seen: list[str] = []

    async def committed_published() -> bool:
        seen[:] = _event_ids(await records_to_end(settings.kafka, start))
        return str(committed.event_id) in seen

    async with running_relay(outbox_engine, settings.kafka):
        await wait_until(committed_published, within=60, what="the committed write's event")
    assert str(rolled_back.event_id) not in seen, "the rolled-back write's event was published"
    assert set(await committed_orders(outbox_engine, run)) == {str(committed.event_id)}
    record_outcome(
        Outcome(
            scenario=f"outbox: rolled-back write ({_backend(database_url)})",
            events=1,
            lost=0,
            dead_lettered=0,
            recover_s=None,
        )
    )


@pytest.mark.long
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_relay_cut_off_from_its_database_says_so_once_and_catches_up(
    database_url: str,
    outbox_engine: AsyncEngine,
    settings: InvalidatorSettings,
    redis_clients: dict[str, RedisClient],
) -> None:
    """The relay reaches PostgreSQL through a proxy that is cut while the service goes on
    writing (directly). Each of its warnings is logged once in the outage, however often it
    retried; after it every committed write is purged in both regions, and the relay listens
    again: a later write is relayed sooner than its poll would find it."""
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    relay_engine = create_async_engine(url.set(host="127.0.0.1", port=proxy.port))
    logged = LoggedLines(logging.getLogger("producers.outbox.relay"))
    relay = OutboxRelay(relay_engine, settings.kafka, poll_interval_s=OUTAGE_POLL_S)
    run = uuid.uuid4().hex[:8]
    written = 0

    async def write(count: int) -> None:
        nonlocal written
        for _ in range(count):
            async with outbox_engine.begin() as connection:
                await write_order(connection, run, written)
            written += 1

    async def relayed(count: int) -> bool:
        return relay.stats.published >= count

    await relay.start()
    relaying = asyncio.create_task(relay.run())
    try:
        with logged:
            async with running_invalidators(settings, CATALOGUE):
                await write(WRITES)
                await wait_until(lambda: relayed(WRITES), within=60, what="writes before the cut")
                failures_before = relay.stats.publish_failures
                await proxy.cut()
                outage_ends = time.monotonic() + 3 * OUTAGE_POLL_S + 1
                while time.monotonic() < outage_ends:
                    await write(10)
                    await asyncio.sleep(0.1)  # pacing the writes, not a synchronisation
                retries = relay.stats.publish_failures - failures_before
                await proxy.restore()
                fault_ended = time.monotonic()
                await settle_and_account(
                    "outbox: the relay cut off from PostgreSQL while writing",
                    await committed_orders(outbox_engine, run),
                    redis_clients,
                    fault_ended=fault_ended,
                )
                assert retries >= 2, f"the relay retried {retries} times: the outage was too short"
                repeated = {line: n for line, n in logged.counts().items() if n > 1}
                assert not repeated, f"warnings repeated within a minute: {repeated}"

                # Listening again: a write is relayed well before the poll would find it.
                caught_up = relay.stats.published
                await write(1)
                await wait_until(
                    lambda: relayed(caught_up + 1),
                    within=OUTAGE_POLL_S / 2,
                    what="a write after the outage relayed before the next poll (LISTEN again)",
                )
    finally:
        relay.stop()
        await asyncio.wait_for(relaying, timeout=60)
        await relay.stop_producer()
        await relay_engine.dispose()
        await proxy.cut()
