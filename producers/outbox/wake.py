"""What happens when a transaction that added outbox rows commits: the relays are woken.

`add_events` tags the database connection it wrote on. When that connection goes back to the
engine's pool (after the commit, or a rollback, which wakes a relay for nothing), every callback
registered on the engine is called once, in the event loop it was registered from:
- a relay running in the same process on the same engine is woken (`on_outbox_commit`; the only
  way on SQLite);
- on PostgreSQL, the writing process notifies the relays of every process (`notify_after_commit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from producers.outbox.table import TABLE_NAME

log = logging.getLogger(__name__)

_WROTE_ROWS = "outbox_rows_added"
"""The key `add_events` sets in the connection's info (kept with the pooled connection)."""
NOTIFY_CHANNEL = TABLE_NAME
"""The PostgreSQL channel the writers notify and the relays listen on."""
_NOTIFY_FAILED_LOG_EVERY_S = 60.0
_NOTIFY = text("SELECT pg_notify(:channel, '')")

_Callback = tuple[asyncio.AbstractEventLoop, Callable[[], None]]
_callbacks: weakref.WeakKeyDictionary[Engine, list[_Callback]] = weakref.WeakKeyDictionary()
_notifiers: weakref.WeakKeyDictionary[Engine, dict[asyncio.AbstractEventLoop, _CommitNotifier]] = (
    weakref.WeakKeyDictionary()
)
"""Per engine, its notifier in each event loop that wrote outbox rows on it (a loop closed since
is dropped: an engine without a pool of connections can outlive the loop it was first used in)."""


def tag_outbox_rows(connection: Connection) -> None:
    """Note that `connection`'s transaction added outbox rows."""
    connection.info[_WROTE_ROWS] = True


@contextlib.contextmanager
def on_outbox_commit(engine: AsyncEngine, wake: Callable[[], None]) -> Iterator[None]:
    """Call `wake` (in the event loop running now) each time a connection of `engine` that
    added outbox rows returns to the pool, for as long as the context lasts."""
    entry = (asyncio.get_running_loop(), wake)
    _register(engine.sync_engine, entry)
    try:
        yield
    finally:
        _callbacks[engine.sync_engine].remove(entry)


def notify_after_commit(engine: AsyncEngine) -> None:
    """PostgreSQL: from now on, after each commit of outbox rows on `engine`, NOTIFY the relays
    (of any process) on a connection of the engine, outside the writer's transaction; idempotent.

    A NOTIFY inside the writer's transaction would serialise the commits of every writer:
    PostgreSQL holds one lock per database from a notifying transaction's pre-commit until its
    commit is flushed. Here at most one NOTIFY per process is under way at a time, and commits
    that come in meanwhile are covered by one more, sent after it: every commit is followed by
    a NOTIFY sent after it returned. The NOTIFY is sent in the event loop running now.
    """
    sync_engine = engine.sync_engine
    loop = asyncio.get_running_loop()
    per_loop = _notifiers.setdefault(sync_engine, {})
    if loop in per_loop:
        return
    for closed in [other for other in per_loop if other.is_closed()]:
        _callbacks[sync_engine].remove((closed, per_loop.pop(closed).committed))
    notifier = _CommitNotifier(engine)
    per_loop[loop] = notifier
    _register(sync_engine, (loop, notifier.committed))


class _CommitNotifier:
    """Sends one NOTIFY at a time on `engine`, and one more when commits came in meanwhile."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sending: asyncio.Task[None] | None = None
        self._again = False
        self._failure_logged_at = float("-inf")

    def committed(self) -> None:
        if self._sending is not None and not self._sending.done():
            self._again = True
            return
        self._sending = asyncio.get_running_loop().create_task(self._send(), name="outbox-notify")

    async def _send(self) -> None:
        while True:
            self._again = False
            try:
                async with self._engine.connect() as connection:
                    # Outside a transaction: one round trip, where BEGIN, the NOTIFY and
                    # COMMIT made three (a notification is delivered at its commit).
                    autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                    await autocommit.execute(_NOTIFY, {"channel": NOTIFY_CHANNEL})
            except Exception as error:  # the relays poll meanwhile; said once a minute
                if time.monotonic() - self._failure_logged_at >= _NOTIFY_FAILED_LOG_EVERY_S:
                    self._failure_logged_at = time.monotonic()
                    log.warning(
                        "outbox: cannot NOTIFY the relays after a commit (they find the rows "
                        "at their next poll): %s",
                        error,
                    )
            if not self._again:
                return


def _register(sync_engine: Engine, entry: _Callback) -> None:
    """Add `entry` to the engine's callbacks, listening to its pool's check-ins the first
    time."""
    if sync_engine not in _callbacks:
        _callbacks[sync_engine] = []
        ref = weakref.ref(sync_engine)

        def checked_in(_dbapi_connection: Any, record: Any) -> None:
            if record is None or not record.info.pop(_WROTE_ROWS, False):
                return
            engine = ref()
            if engine is not None:
                _call(_callbacks.get(engine, []))

        event.listen(sync_engine, "checkin", checked_in)
    _callbacks[sync_engine].append(entry)


def _call(entries: list[_Callback]) -> None:
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    for loop, callback in list(entries):
        if loop is running:
            callback()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(callback)
