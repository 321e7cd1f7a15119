"""The `database_url` fixture gives each test an empty database of its own, on SQLite and on
the stack's PostgreSQL, and drops the PostgreSQL one afterwards."""

from __future__ import annotations

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests.integration.databases import scratch_postgres_database

ROWS = sa.table("rows", sa.column("id", sa.Integer))


async def test_the_database_is_empty_and_takes_rows(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            tables = await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names())
            assert tables == []
            await connection.execute(sa.text("CREATE TABLE rows (id INTEGER PRIMARY KEY)"))
            await connection.execute(sa.insert(ROWS), [{"id": 1}, {"id": 2}])
        async with engine.connect() as connection:
            assert (
                await connection.execute(sa.select(sa.func.count()).select_from(ROWS))
            ).scalar_one() == 2
    finally:
        await engine.dispose()


async def test_a_scratch_database_is_dropped_even_with_a_session_open(
    stack_env: dict[str, str],
) -> None:
    server_url = stack_env["OUTBOX_DATABASE_URL"]
    async with scratch_postgres_database(server_url) as url:
        name = make_url(url).database
        assert name is not None and name.startswith("outbox_test_")
        engine = create_async_engine(url)
        held = await engine.connect()  # still open when the database is dropped
        assert (await held.execute(sa.text("SELECT current_database()"))).scalar_one() == name
    server = await asyncpg.connect(
        make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        remaining = await server.fetchval(
            "SELECT count(*) FROM pg_database WHERE datname = $1", name
        )
    finally:
        await server.close()
    assert remaining == 0
    await held.invalidate()  # its server session ended with the database
    await engine.dispose()
