"""The demo's database, empty at every start: a SQLite file of its own, or a schema of its own in
the stack's PostgreSQL (`OUTBOX_DATABASE_URL`)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts import SettingsError
from contracts.settings import read_settings
from producers.outbox import RelaySettings, delete_sqlite_database, sqlite_engine

DATABASES = ("sqlite", "postgresql")
POSTGRES_SCHEMA = "orders_demo"
"""The demo's tables (its outbox table included) live here, apart from anything else in the
database: a rerun drops it whole, and no other writer's outbox rows reach the demo's relay."""
POSTGRES_POOL_SIZE = 16
"""Writers, readers filling misses, the relay (one connection held for LISTEN) and its lag
sampler, without opening a connection per transaction."""

SQLITE_READERS = 4
"""Connections for the readers' fills on SQLite (reads only, beside the writers' one)."""


async def fresh_engine(database: str, run_dir: Path) -> AsyncEngine:
    """An engine on an empty demo database.

    database: `sqlite` (the file `orders.db` in `run_dir`, deleted first) or `postgresql` (the
        schema `orders_demo` of `OUTBOX_DATABASE_URL`'s database, dropped and created again).
    run_dir: the demo's working directory.
    """
    if database == "sqlite":
        return await _fresh_sqlite(run_dir / "orders.db")
    return await _fresh_postgres()


async def _fresh_sqlite(path: Path) -> AsyncEngine:
    # One connection for the writers and the relay (`sqlite_engine`): SQLite takes one writer
    # at a time, and the pool queues them where contending connections would sleep.
    return sqlite_engine(_removed(path))


def page_reader(engine: AsyncEngine) -> AsyncEngine:
    """The engine the readers' cache fills read on: for SQLite, connections of their own.

    A fill queued on the writers' one connection waited behind every write transaction and the
    relay's marks (~250 ms p50 at 25 writes/s); in write-ahead logging a reader reads the last
    commit while the writer writes. PostgreSQL's pool serves both (the engine itself).
    """
    if engine.dialect.name != "sqlite":
        return engine
    return sqlite_engine(engine.url, pool_size=SQLITE_READERS)


def _removed(path: Path) -> str:
    """Delete the SQLite file at `path` (and its write-ahead log); its URL."""
    delete_sqlite_database(path)
    return f"sqlite+aiosqlite:///{path.resolve()}"


async def _fresh_postgres() -> AsyncEngine:
    try:
        settings = read_settings(RelaySettings)
    except SettingsError as error:
        raise SettingsError(
            "--database postgresql needs OUTBOX_DATABASE_URL (and OUTBOX_DATABASE_PASSWORD if the "
            f"server wants one); run `make demo` (it starts the stack): {error}"
        ) from None
    # Over TLS when OUTBOX_DATABASE_TLS__* says so (the secure profile), as `outbox relay`.
    tls = settings.database_tls
    engine = create_async_engine(
        settings.connection_url(),
        connect_args={} if tls is None else {"ssl": tls.context()},
        pool_size=POSTGRES_POOL_SIZE,
        execution_options={"schema_translate_map": {None: POSTGRES_SCHEMA}},
    )
    async with engine.begin() as connection:
        await connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {POSTGRES_SCHEMA} CASCADE")
        await connection.exec_driver_sql(f"CREATE SCHEMA {POSTGRES_SCHEMA}")
    return engine
