"""On SQLite the relay marks each acknowledged row published, and its cleanup deletes the rows
published longer than the retention ago (without a retention, at the next cleanup), but never
the newest row: in a table made without AUTOINCREMENT, SQLite gives a deleted newest row's id to
the next row, which a claim could take for a row in flight. (A producer that acknowledges
everything stands in for Kafka; the outbox is a SQLite file, made as the version before this one
made it.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts.connections import KafkaConnection
from producers.outbox import OUTBOX_TABLE, OutboxRelay, create_outbox_table, ddl
from tests.relay_fakes import Acknowledging, published_ids, write_row


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    created = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    assert "AUTOINCREMENT" not in ddl("sqlite")
    await create_outbox_table(created)
    yield created
    await created.dispose()


async def _rows(engine: AsyncEngine) -> list[tuple[int, bool]]:
    """Each row's id, and whether it is marked published."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(OUTBOX_TABLE.c.id, OUTBOX_TABLE.c.published_at.is_not(None)).order_by(
                OUTBOX_TABLE.c.id
            )
        )
        return [(row_id, marked) for row_id, marked in rows]


async def test_rows_are_marked_and_the_cleanup_keeps_the_newest_whose_id_would_be_given_again(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = OutboxRelay(engine, KafkaConnection())  # no retention
    monkeypatch.setattr(relay, "_producer", Acknowledging())
    first = [await write_row(engine, order_id, 1) for order_id in ("a", "b")]
    assert await relay.relay_once() == 2
    assert await published_ids(engine) == set(first)
    (a_id, a_marked), (b_id, b_marked) = await _rows(engine)
    assert a_marked and b_marked, "acknowledged rows not marked"

    assert await relay.cleanup() == 1
    assert await _rows(engine) == [(b_id, True)], "the newest row was deleted, or an older kept"

    await write_row(engine, "c", 1)
    assert await relay.relay_once() == 1
    assert await relay.cleanup() == 1
    ((c_id, c_marked),) = await _rows(engine)
    assert c_id > b_id > a_id and c_marked, "an id was given twice"
