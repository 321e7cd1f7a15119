"""A SQLite engine set up for an outbox: write-ahead logging, and a commit that does not wait
for the disk.

SQLite's default commit syncs the file to disk (about 3.4 ms here, more under load). A service
writing through the outbox commits twice more per relayed batch (the relay's claim and its mark)
on the same single writer, so every sync queues the writers behind it. In write-ahead logging
with `synchronous=NORMAL` a commit appends to the log and returns; the log is synced at each
checkpoint. A commit survives a crash of the process; a power loss may roll back the last
commits, each whole: a change and its event's outbox row go together, so no purge is lost for a
change that stayed. A relayed event whose commit is rolled back that way purges for nothing,
which is safe. `synchronous="FULL"` keeps a sync per commit where that is not acceptable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SqliteSync = Literal["NORMAL", "FULL"]


def sqlite_engine(
    url: str | URL, *, synchronous: SqliteSync = "NORMAL", pool_size: int = 1
) -> AsyncEngine:
    """An engine on the SQLite database of `url` (`sqlite+aiosqlite:///path`) whose every
    connection is in write-ahead logging with `synchronous`.

    pool_size: its connections, none beyond (SQLite takes one writer at a time: contending
        connections wait in its busy handler's sleeps, tens of ms, where the pool queues them).
    """
    if synchronous not in ("NORMAL", "FULL"):
        raise ValueError(f"synchronous={synchronous!r}: write NORMAL or FULL")
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0)
    _set_up_connections(engine.sync_engine, synchronous)
    return engine


def sqlite_blocking_engine(url: str | URL) -> Engine:
    """A blocking (pysqlite) one-connection engine on the SQLite database of `url` (either
    driver's URL), in write-ahead logging, for a thread of its own: a statement run there is
    one hop from the event loop, where aiosqlite makes a hop per call (connect, execute, fetch,
    reset)."""
    engine = create_engine(make_url(url).set(drivername="sqlite"), pool_size=1, max_overflow=0)
    _set_up_connections(engine, "NORMAL")
    return engine


def _set_up_connections(engine: Engine, synchronous: SqliteSync) -> None:
    @event.listens_for(engine, "connect")
    def _set_up(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()


def delete_sqlite_database(path: Path) -> None:
    """Delete the SQLite database at `path` with its write-ahead log and shared-memory files (a
    database to start afresh; none of them need exist). No engine may have it open."""
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
