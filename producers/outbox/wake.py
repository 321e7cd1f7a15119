"""Waking a relay in the same process when a transaction that added outbox rows commits.

`add_events` tags the database connection it wrote on; when that connection goes back to the
engine's pool (after the commit, or a rollback, which wakes the relay for nothing), the relay
listening on the same engine is woken. It covers the writers and the relay sharing an engine,
the only way on SQLite; a writer on another engine, or another process, is seen by the
PostgreSQL NOTIFY or the relay's poll instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

_WROTE_ROWS = "outbox_rows_added"
"""The key `add_events` sets in the connection's info (kept with the pooled connection)."""


def tag_outbox_rows(connection: Connection) -> None:
    """Note that `connection`'s transaction added outbox rows."""
    connection.info[_WROTE_ROWS] = True


@contextlib.contextmanager
def on_outbox_commit(engine: AsyncEngine, wake: Callable[[], None]) -> Iterator[None]:
    """Call `wake` (in the event loop running now) each time a connection of `engine` that
    added outbox rows returns to the pool, for as long as the context lasts."""
    loop = asyncio.get_running_loop()

    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        if record is None or not record.info.pop(_WROTE_ROWS, False):
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake()
        else:
            loop.call_soon_threadsafe(wake)

    pool_events = engine.sync_engine
    event.listen(pool_events, "checkin", checked_in)
    try:
        yield
    finally:
        event.remove(pool_events, "checkin", checked_in)
