"""Without a retention the relay's mark deletes the row, where ids are never given twice: a SQLite
table made with AUTOINCREMENT, as `create_outbox_table` makes it. On a SQLite table made before
that, the newest row's id would be given again to the next row once deleted, and a claim could
take that row for one in flight: there the rows are marked published and kept for the cleanup.
(A producer that acknowledges everything stands in for Kafka; the outbox is a SQLite file.)"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts.connections import KafkaConnection
from producers.outbox import OUTBOX_TABLE, OutboxRelay, create_outbox_table, ddl
from tests.relay_fakes import Acknowledging, published_ids, write_row


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    created = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    yield created
    await created.dispose()


def _relay(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> OutboxRelay:
    relay = OutboxRelay(engine, KafkaConnection())
    monkeypatch.setattr(relay, "_producer", Acknowledging())
    return relay


async def _ids_and_marks(engine: AsyncEngine) -> list[tuple[int, bool]]:
    """Each row's id, and whether it is marked published."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(OUTBOX_TABLE.c.id, OUTBOX_TABLE.c.published_at.is_not(None)).order_by(
                OUTBOX_TABLE.c.id
            )
        )
        return [(row_id, marked) for row_id, marked in rows]


async def _largest_id(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.max(OUTBOX_TABLE.c.id)))).scalar_one())


async def test_rows_are_deleted_as_their_mark_and_their_ids_never_given_again(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create_outbox_table(engine)
    relay = _relay(engine, monkeypatch)
    first = [await write_row(engine, order_id, 1) for order_id in ("a", "b")]
    newest_before = await _largest_id(engine)
    assert await relay.relay_once() == 2
    assert await published_ids(engine) == set(first)
    assert await _ids_and_marks(engine) == [], "published rows were kept"

    await write_row(engine, "c", 1)
    assert await _largest_id(engine) > newest_before, "a deleted row's id was given again"
    assert await relay.relay_once() == 1
    assert await _ids_and_marks(engine) == []


async def test_on_a_table_made_without_autoincrement_rows_are_marked_not_deleted(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    made_before = ddl("sqlite").replace(" AUTOINCREMENT", "")
    assert made_before != ddl("sqlite")
    async with engine.begin() as connection:
        for statement in made_before.split(";"):
            if statement.strip():
                await connection.exec_driver_sql(statement)
    await create_outbox_table(engine)  # finds it made
    relay = _relay(engine, monkeypatch)
    written = [await write_row(engine, order_id, 1) for order_id in ("a", "b")]
    with caplog.at_level(logging.WARNING, logger="producers.outbox.relay"):
        assert await relay.relay_once() == 2
        await write_row(engine, "c", 1)
        assert await relay.relay_once() == 1
    assert [marked for _, marked in await _ids_and_marks(engine)] == [True, True, True]
    assert len(await published_ids(engine)) == len(written) + 1
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 1 and "without AUTOINCREMENT" in said[0], said
