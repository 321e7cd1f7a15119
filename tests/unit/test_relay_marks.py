"""On SQLite the relay marks acknowledged rows in the background, through the service's engine:
its claims read past rows whose mark is under way (nothing is sent twice while a mark waits),
and a mark that fails leaves its rows to be sent again (at least once, never lost). A commit on
the relay's own engine wakes a relay that would otherwise poll once a minute. (A producer that
acknowledges everything stands in for Kafka; the outbox is a SQLite file.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from contracts.connections import KafkaConnection
from producers.outbox import OutboxRelay, create_outbox_table
from tests.relay_fakes import Acknowledging, assert_each_write_wakes, published_ids, write_row


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    created = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    async with created.connect() as connection:
        await connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    await create_outbox_table(created)
    yield created
    await created.dispose()


def _relay(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, *, poll_interval_s: float = 0.2
) -> tuple[OutboxRelay, Acknowledging]:
    relay = OutboxRelay(engine, KafkaConnection(), poll_interval_s=poll_interval_s)
    kafka = Acknowledging()
    monkeypatch.setattr(relay, "_producer", kafka)
    return relay, kafka


async def test_claims_read_past_rows_whose_mark_waits_and_send_nothing_twice(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay, kafka = _relay(engine, monkeypatch)
    gate = asyncio.Event()
    original_mark = relay._mark

    async def gated_mark(connection: AsyncConnection, ids: Sequence[int]) -> None:
        await gate.wait()
        await original_mark(connection, ids)

    monkeypatch.setattr(relay, "_mark", gated_mark)
    first = [await write_row(engine, f"a{n}", 1) for n in range(3)]
    assert await relay._relay_batch() == 3
    second = [await write_row(engine, f"b{n}", 1) for n in range(2)]
    assert await relay._relay_batch() == 2, "rows whose mark is under way were claimed again"
    assert await relay._relay_batch() == 0
    assert kafka.sent == first + second, "a row was sent twice"
    assert await published_ids(engine) == set()
    gate.set()
    assert await relay.relay_once() == 0  # and waits for the marks
    assert await published_ids(engine) == set(first + second)
    assert await relay.pending() == (0, 0.0)
    await relay.stop_producer()


async def test_a_failed_mark_leaves_its_rows_to_be_sent_again(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay, kafka = _relay(engine, monkeypatch)
    written = [await write_row(engine, f"c{n}", 1) for n in range(2)]
    original_mark = relay._mark
    failures = iter([RuntimeError("database is locked")])

    async def failing_once(connection: AsyncConnection, ids: Sequence[int]) -> None:
        error = next(failures, None)
        if error is not None:
            raise error
        await original_mark(connection, ids)

    monkeypatch.setattr(relay, "_mark", failing_once)
    assert await relay.relay_once() == 2
    assert await published_ids(engine) == set(), "rows were marked by a failed mark"
    assert await relay.relay_once() == 2, "the unmarked rows were not sent again"
    assert kafka.sent == written + written
    assert await published_ids(engine) == set(written)
    await relay.stop_producer()


async def test_a_commit_on_the_relays_engine_wakes_it_without_polling(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay, kafka = _relay(engine, monkeypatch, poll_interval_s=60.0)
    await assert_each_write_wakes(relay, lambda n: write_row(engine, f"d{n}", 1))
    assert len(kafka.sent) == 2
