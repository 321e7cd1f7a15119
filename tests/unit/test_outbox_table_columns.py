"""The outbox table's `event_type` and `schema_version` columns (Debezium turns them into headers):
in the DDL, filled by the writer, and added to a table made before them, filled from each row's
headers, idempotently (SQLite file, no service)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts.example_orders import OrderStatusChanged
from producers.outbox import OUTBOX_TABLE, add_event, create_outbox_table, ddl

OLDER_TABLE = """
CREATE TABLE event_outbox (
    id INTEGER NOT NULL PRIMARY KEY,
    event_id VARCHAR(36) NOT NULL UNIQUE,
    topic VARCHAR(249) NOT NULL,
    partition_key BLOB NOT NULL,
    headers JSON NOT NULL,
    value BLOB NOT NULL,
    created_at DATETIME NOT NULL,
    published_at DATETIME
)"""
"""The table as the version before these columns created it."""

OLDER_ROW_HEADERS = {
    "event-type": "orders.OrderStatusChanged",
    "schema-version": "1",
    "event-id": "e-1",
    "content-type": "application/json",
}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncEngine:
    return create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_the_ddl_has_the_header_columns(dialect: str) -> None:
    statements = ddl(dialect)
    assert "event_type VARCHAR(200) NOT NULL" in statements
    assert "schema_version VARCHAR(10) NOT NULL" in statements


async def test_the_writer_fills_the_columns_with_the_headers(engine: AsyncEngine) -> None:
    await create_outbox_table(engine)
    async with engine.begin() as db:
        envelope = await add_event(
            db,
            OrderStatusChanged(
                order_id="o-1", company_id="c-1", old_status="placed", new_status="paid"
            ),
            source="orders-api",
            tenant="acme",
            aggregate_version=1,
        )
    async with engine.connect() as db:
        row = (await db.execute(select(OUTBOX_TABLE))).one()
    await engine.dispose()
    assert row.event_type == envelope.type == row.headers["event-type"]
    assert row.schema_version == str(envelope.schema_version) == row.headers["schema-version"]


async def test_an_older_table_gets_the_columns_filled_from_its_rows_headers(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as db:
        await db.execute(text(OLDER_TABLE))
        await db.execute(
            text(
                "INSERT INTO event_outbox (event_id, topic, partition_key, headers, value,"
                " created_at) VALUES ('e-1', 'orders.events', x'6b', :headers, x'7b7d',"
                " '2026-01-01 00:00:00')"
            ),
            {"headers": json.dumps(OLDER_ROW_HEADERS)},
        )
    await create_outbox_table(engine)
    await create_outbox_table(engine)  # idempotent
    async with engine.connect() as db:
        rows = (
            await db.execute(select(OUTBOX_TABLE.c.event_type, OUTBOX_TABLE.c.schema_version))
        ).all()
    await engine.dispose()
    assert [tuple(row) for row in rows] == [("orders.OrderStatusChanged", "1")]
