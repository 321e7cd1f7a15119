"""The relay: publishes the outbox's pending rows to Kafka, in id order, and marks them.

On PostgreSQL a row's mark deletes it (the default), or, with a retention, sets its
`published_at`, and the row is deleted once the retention is over; on SQLite the mark sets
`published_at` and the cleanup deletes the row after the retention. At least once: a row is
marked only after Kafka acknowledged it, so a relay killed between the two publishes the row
again on restart (the same event id; the invalidator's purges are idempotent). Several relays
may run on PostgreSQL: each claims rows with `FOR UPDATE SKIP LOCKED` in the transaction that
marks them, and leaves a key's rows alone while another relay holds an earlier row of that key,
so the events of one aggregate go out in id order. On SQLite run one relay: it reads the rows on
a connection of its own (write-ahead logging lets it read while the service writes), publishes
them with no transaction open, and marks them through the service's engine in the background,
reading past the rows whose mark is still under way.

What wakes it: a commit of outbox rows on the relay's own engine (the writers in the same
process, `producers.outbox.wake`), a NOTIFY delivered at commit (PostgreSQL, any process), and
otherwise every `poll_interval_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Engine,
    Select,
    String,
    Text,
    any_,
    bindparam,
    case,
    cast,
    delete,
    func,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.connections import KafkaConnection
from contracts.events import (
    CONTENT_TYPE_JSON,
    HEADER_CONTENT_TYPE,
    HEADER_EVENT_ID,
    HEADER_EVENT_TYPE,
    HEADER_SCHEMA_VERSION,
)
from contracts.kafka_clients import idempotent_producer
from contracts.percentiles import percentile
from contracts.renewing_producer import RenewingProducer
from producers.outbox.sqlite import sqlite_blocking_engine
from producers.outbox.table import OUTBOX_TABLE
from producers.outbox.wake import NOTIFY_CHANNEL, on_outbox_commit

log = logging.getLogger(__name__)

_T = OUTBOX_TABLE.c
_PENDING = (
    select(
        _T.id,
        _T.topic,
        _T.partition_key,
        _T.event_id,
        _T.event_type,
        _T.schema_version,
        # Only where a writer of the version before those columns left them empty; as text:
        # decoding every row's JSON cost more than the rest of its claim.
        case(
            (or_(_T.event_type.is_(None), _T.schema_version.is_(None)), cast(_T.headers, Text)),
            else_=null(),
        ).label("headers_json"),
        _T.value,
        _T.created_at,
    )
    .where(_T.published_at.is_(None))
    .order_by(_T.id)
)
"""The pending rows in id order, as `_pending_row` reads them."""
_CONTENT_TYPE = (HEADER_CONTENT_TYPE, CONTENT_TYPE_JSON.encode())
_CLEANUP_EVERY_S = 10.0
_UNMARKED_LIMIT = 5_000
"""SQLite: the most acknowledged rows whose mark is under way before the relay waits for them
(the marks queue with the service's writers; the claims read past these rows)."""
_SAMPLES_PER_BATCH = 16
"""Rows per batch whose wait and delay go into `RelayStats` (all of a small batch)."""
_CLAIM_SETTINGS = (
    "SELECT set_config('synchronous_commit', 'off', true),"
    " set_config('plan_cache_mode', 'force_custom_plan', true)"
)
"""A claim's transaction's settings (PostgreSQL; see `OutboxRelay._claim_connection`)."""
_CLAIM_SETTINGS_IN_BACKLOG = _CLAIM_SETTINGS + ", set_config('enable_bitmapscan', 'off', true)"
"""The same, and no bitmap scans: the settings of a claim made during a backlog."""


@dataclass
class RelayStats:
    """What one relay did since it started."""

    published: int = 0
    batches: int = 0
    publish_failures: int = 0
    deleted: int = 0
    oldest_unpublished_age_s: float = 0.0
    """How old the oldest row not yet published was at the last look (0 when none)."""
    delay_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    """Row written -> acknowledged by Kafka, ms; the latest samples."""
    wait_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    """Row written -> claimed by the relay, ms (the part of the delay before publishing)."""
    claim_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1_000))
    """Per batch: the claim's round trips to the database, ms."""
    publish_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1_000))
    """Per batch: first send -> every acknowledgement, ms."""
    mark_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1_000))
    """Per batch: marking the rows published and committing, ms."""

    def as_dict(self) -> dict[str, float]:
        """The counters and the delay percentiles, for a log line or a stats file."""
        figures: dict[str, float] = {
            "published": self.published,
            "batches": self.batches,
            "publish_failures": self.publish_failures,
            "deleted": self.deleted,
            "oldest_unpublished_age_s": round(self.oldest_unpublished_age_s, 3),
        }
        for stage in ("delay", "wait", "claim", "publish", "mark"):
            samples = list(getattr(self, f"{stage}_ms"))
            figures[f"{stage}_ms_p50"] = round(percentile(samples, 0.5), 2)
            figures[f"{stage}_ms_p99"] = round(percentile(samples, 0.99), 2)
        return figures

    def write_json(self, path: Path) -> None:
        """Replace `path` with `as_dict()` as JSON, whole: a reader never sees half a file."""
        partial = path.with_suffix(path.suffix + ".partial")
        partial.write_text(json.dumps(self.as_dict()))
        os.replace(partial, path)


class PendingRow(NamedTuple):
    """An outbox row claimed to be published (a plain tuple: the relay reads each field of
    every row a few times, and a result row's attribute lookup costs several times more)."""

    id: int
    topic: str
    partition_key: bytes
    headers: list[tuple[str, bytes]]
    """The record's headers, as Kafka takes them."""
    value: bytes
    created_at: datetime


def _pending_row(row: Sequence[Any]) -> PendingRow:
    """A row of `_PENDING` as the relay sends it. Its headers are the envelope's (`headers` as
    `add_events` wrote them) made from its columns, as Debezium's router makes them; from the
    `headers` JSON where the columns are empty (a row of a writer of the version before
    them)."""
    (
        row_id,
        topic,
        partition_key,
        event_id,
        event_type,
        schema_version,
        headers_json,
        value,
        created_at,
    ) = row[:9]
    if headers_json is None and event_type is not None and schema_version is not None:
        headers = [
            (HEADER_EVENT_TYPE, event_type.encode()),
            (HEADER_SCHEMA_VERSION, schema_version.encode()),
            (HEADER_EVENT_ID, event_id.encode()),
            _CONTENT_TYPE,
        ]
    else:
        written: dict[str, str] = json.loads(headers_json or "{}")
        headers = [(name, text.encode()) for name, text in written.items()]
    return PendingRow(row_id, topic, partition_key, headers, value, created_at)


@dataclass
class _Claim:
    """Rows claimed for one batch."""

    rows: list[PendingRow]
    connection: AsyncConnection | None = None
    """PostgreSQL: the connection whose transaction holds the rows' locks and marks them."""

    async def release(self) -> None:
        """Give the rows back unmarked (PostgreSQL: roll back, which frees their locks)."""
        if self.connection is not None:
            await self.connection.close()


class OutboxRelay:
    """Publishes pending outbox rows with an idempotent `acks=all` producer, a batch at a time
    (one flush per batch), and marks the acknowledged ones published.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        kafka: KafkaConnection,
        *,
        batch_size: int = 500,
        poll_interval_s: float = 0.2,
        retention_s: float = 0.0,
        client_id: str = "outbox-relay",
    ) -> None:
        """engine: the service's database (PostgreSQL or SQLite, async driver).
        kafka: the brokers.
        batch_size: the most rows published per batch.
        poll_interval_s: how long to wait for new rows before looking again (a commit of new
            rows on this engine, or on PostgreSQL from anywhere, wakes the relay at once; this
            is the fallback).
        retention_s: how long published rows are kept, marked with the time, before they are
            deleted. 0 on PostgreSQL: a row is deleted as its mark, once Kafka acknowledged it
            (half the database's work per row: no new row version, no index entries); on
            SQLite: at the next cleanup (every 10 s).
        client_id: the Kafka client id.
        """
        self._engine = engine
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._retention = timedelta(seconds=retention_s)
        # A row's record is as large as the broker allows (its default limit); the broker
        # refuses larger ones.
        self._producer = RenewingProducer(
            lambda: idempotent_producer(kafka, client_id=client_id), name="outbox relay"
        )
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._postgresql = engine.dialect.name == "postgresql"
        # SQLite: the claims' own connection. Both: the acknowledged rows whose mark is under
        # way (the claims read past them), and the task marking them.
        self._reader: _SqliteReader | None = None
        self._unmarked: set[int] = set()
        self._to_mark: list[int] = []
        self._marker: asyncio.Task[None] | None = None
        # While `run` relays: the next batch claimed while the last one's acknowledgements are
        # awaited, and the keys whose rows the last batch failed to publish.
        self._prefetching = False
        self._prefetched: asyncio.Task[_Claim] | None = None
        self._held_keys: set[bytes] = set()
        # PostgreSQL: whether the last claim was a full batch (a backlog).
        self._backlog = False
        self.stats = RelayStats()
        # Built once, run with the ids as parameters: building and keying a statement per
        # claim or mark cost more CPU than running it (SQLite's relay shares the writers'
        # event loop).
        # PostgreSQL without a retention: the mark deletes (half the database's work per row).
        # SQLite marks (a DELETE there gained no rate and cost the writers' p99 on the shared
        # connection); the cleanup deletes the rows after the retention.
        self._mark_statement = (
            delete(OUTBOX_TABLE).where(_ids_in(True))
            if self._postgresql and retention_s == 0
            else update(OUTBOX_TABLE)
            .where(_ids_in(self._postgresql))
            .values(published_at=bindparam("now"))
        )
        self._claim_all = _PENDING.limit(batch_size)
        self._claim_excluding = _PENDING.where(~_ids_in(self._postgresql)).limit(batch_size)
        self._claim_locked = _locking_claim(batch_size, excluding=False)
        self._claim_locked_excluding = _locking_claim(batch_size, excluding=True)

    async def start(self) -> None:
        """Connect to Kafka."""
        await self._producer.start()

    async def stop_producer(self) -> None:
        """Finish the marks under way, flush and disconnect from Kafka (and the claims'
        connection)."""
        await self._drop_prefetched()
        await self._marks_done()
        await self._producer.stop()
        if self._reader is not None:
            await self._reader.close()
        self._reader = None

    def stop(self) -> None:
        """Ask `run` to return after the batch in hand."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Relay until `stop()`: a batch at a time, at once while rows are pending, else on a
        notification (PostgreSQL) or every `poll_interval_s`. A failed publish is retried after
        a back-off; its rows stay pending meanwhile."""
        async with contextlib.AsyncExitStack() as running:
            running.enter_context(on_outbox_commit(self._engine, self._wake.set))
            if self._postgresql:
                listening = asyncio.create_task(self._listen(), name="outbox-relay-listen")
                running.push_async_callback(_cancel, listening)
            running.callback(setattr, self, "_prefetching", False)
            running.push_async_callback(self._drop_prefetched)
            self._prefetching = True
            last_cleanup = 0.0
            backoff = self._poll_interval_s
            while not self._stopping.is_set():
                try:
                    # The next batch is claimed ahead meanwhile, once rows are committed
                    # (`_prefetch`): the next call waits for them.
                    await self._relay_batch()
                    if len(self._unmarked) >= _UNMARKED_LIMIT:
                        await self._marks_done()
                    if time.monotonic() - last_cleanup >= _CLEANUP_EVERY_S:
                        await self.cleanup()
                        last_cleanup = time.monotonic()
                    backoff = self._poll_interval_s
                except Exception as error:
                    self.stats.publish_failures += 1
                    log.warning("outbox relay: batch failed, retry in %.1f s: %s", backoff, error)
                    # Not cut short by new rows: while Kafka or the database is away every
                    # commit would otherwise start another attempt.
                    await self._pause(backoff)
                    backoff = min(backoff * 2, 5.0)

    async def relay_once(self) -> int:
        """Claim up to `batch_size` pending rows, publish them, mark those acknowledged; how
        many. Raises when none was (Kafka away): the rows stay pending."""
        published = await self._relay_batch()
        await self._marks_done()
        return published

    async def _relay_batch(self) -> int:
        """`relay_once`, except that the marks may still be under way on return, and that
        while `run` relays (`_prefetching`) the next batch is claimed ahead (`_prefetch`)."""
        claim = await self._take_claim()
        rows = claim.rows
        if not rows:
            await claim.release()
            self.stats.oldest_unpublished_age_s = 0.0
            # Nothing failed in it: the next claim, made from now on, holds no key back.
            self._held_keys = set()
            self._prefetch(rows)
            return 0
        self._prefetch(rows)
        try:
            acknowledged = await self._publish_claimed(rows)
        except BaseException:
            await claim.release()
            await self._drop_prefetched()
            raise
        acknowledged_ids = {row.id for row in acknowledged}
        # Rows of these keys claimed meanwhile would overtake the failed ones: left for later.
        self._held_keys = {row.partition_key for row in rows if row.id not in acknowledged_ids}
        if claim.connection is not None:
            await self._mark_claimed(claim.connection, acknowledged, complete=not self._held_keys)
        elif acknowledged:
            self._mark_in_background(acknowledged)
        now = datetime.now(UTC)
        self.stats.published += len(acknowledged)
        self.stats.batches += 1
        self.stats.delay_ms.extend(
            (now - _aware(row.created_at)).total_seconds() * 1000 for row in _sample(acknowledged)
        )
        self.stats.oldest_unpublished_age_s = (now - _aware(rows[0].created_at)).total_seconds()
        if not acknowledged:
            raise RuntimeError(f"none of {len(rows)} rows was acknowledged")
        if len(acknowledged) < len(rows):
            # The rest goes on; those rows, and their keys' later ones, are tried again next.
            self.stats.publish_failures += 1
        return len(acknowledged)

    async def _take_claim(self) -> _Claim:
        """The batch claimed while the last one's acknowledgements were awaited, without the
        keys that batch failed; else a claim made now."""
        if self._prefetched is None:
            return await self._claim_new(in_flight=())
        prefetched, self._prefetched = self._prefetched, None
        claim = await prefetched
        if self._held_keys:
            claim.rows = [row for row in claim.rows if row.partition_key not in self._held_keys]
        return claim

    async def _claim_new(
        self, in_flight: Collection[int], connection: AsyncConnection | None = None
    ) -> _Claim:
        """Claim the next rows, reading past `in_flight` (the rows sent and not yet
        acknowledged) and the acknowledged rows whose mark is under way. PostgreSQL: on
        `connection` (a new `_claim_connection` when None), which holds the rows' locks until
        their mark commits. SQLite: on the relay's own reader connection."""
        excluded = self._unmarked.union(in_flight)
        if self._postgresql:
            if connection is None:
                connection = await self._claim_connection()
            try:
                # A wake-up from here on is for a commit this claim may not see.
                self._wake.clear()
                return _Claim(await self._claim(connection, excluded), connection)
            except BaseException:
                await connection.close()
                raise
        if self._reader is None:
            self._reader = _SqliteReader(self._engine)
        self._wake.clear()
        return _Claim(await self._claim_sqlite(self._reader, excluded))

    def _prefetch(self, in_flight: Sequence[PendingRow]) -> None:
        """While `run` relays, claim the next batch while this one (`in_flight`, maybe empty)
        is sent: at once after a full batch, else as soon as a commit (or the poll) wakes the
        relay, so that a row committed meanwhile does not wait for this batch's
        acknowledgements before its claim."""
        if not self._prefetching or self._stopping.is_set():
            return
        ids = [row.id for row in in_flight]
        claim = (
            self._claim_new(in_flight=ids)
            if len(in_flight) == self._batch_size
            else self._claim_when_woken(in_flight=ids)
        )
        self._prefetched = asyncio.create_task(claim, name="outbox-claim")

    async def _claim_when_woken(self, in_flight: Collection[int]) -> _Claim:
        """`_claim_new` once new rows are committed, or after `poll_interval_s`. PostgreSQL:
        the claim's transaction is opened before the wait, so that a wake-up costs one round
        trip (the claim) before the rows are sent."""
        connection = await self._claim_connection() if self._postgresql else None
        try:
            await self._wait(self._poll_interval_s)
        except BaseException:
            if connection is not None:
                await connection.close()
            raise
        if self._stopping.is_set():
            return _Claim([], connection)
        if connection is not None:
            try:
                return await self._claim_new(in_flight, connection)
            except Exception as error:
                # The open transaction may have been ended meanwhile (the server's
                # idle_in_transaction_session_timeout, a restart): once more, on a new one.
                log.info("outbox relay: claiming again on a new connection: %s", error)
        return await self._claim_new(in_flight)

    async def _claim_connection(self) -> AsyncConnection:
        """PostgreSQL: a connection of the engine's in a transaction begun for a claim and its
        mark. Kafka has the rows when the mark commits: a mark lost in a crash only sends them
        again (at least once, as for a relay killed before its mark), so its commit need not
        wait for the write-ahead log's flush to disk. The claim is planned for its own
        parameters each time: with the generic plan PostgreSQL picks after five runs of a
        prepared statement, the rows in flight are compared one by one (`<> ALL` over an
        array; with the ids known, a hash). (A transaction in read-committed holds no snapshot
        between statements: an open one waiting for a wake-up keeps nothing from vacuum.)

        In a backlog (the last claim was a full batch) bitmap scans are off too: with the
        table's statistics older than its backlog (rows written faster than autovacuum analyses
        them), the planner took every pending row from a bitmap scan and sorted them all on
        disk to lock 500: 41 ms a claim, against 2.9 ms in id order on the pending index.
        Turning sorts off instead priced the plan so high that PostgreSQL compiled it (JIT):
        260 ms. `_backlog` is read as the connection opens: claims are made one at a time, so
        none changes it before the claim made on this connection."""
        connection = await self._engine.connect()
        try:
            await connection.exec_driver_sql(
                _CLAIM_SETTINGS_IN_BACKLOG if self._backlog else _CLAIM_SETTINGS
            )
        except BaseException:
            await connection.close()
            raise
        return connection

    async def _drop_prefetched(self) -> None:
        """Let go of a batch claimed ahead and not sent (its rows stay pending)."""
        if self._prefetched is None:
            return
        prefetched, self._prefetched = self._prefetched, None
        prefetched.cancel()  # a claim waiting for a wake-up gives up its connection
        await asyncio.wait([prefetched])
        if not prefetched.cancelled() and prefetched.exception() is None:
            with contextlib.suppress(Exception):
                await prefetched.result().release()

    async def _mark_claimed(
        self, connection: AsyncConnection, acknowledged: Sequence[PendingRow], *, complete: bool
    ) -> None:
        """PostgreSQL: mark on the claim's connection, which holds the rows' locks until the
        mark commits. When every row was acknowledged (`complete`) it commits in the background
        while the next batch is claimed and sent (one at a time; the next claim reads past its
        rows). After a failure it commits first: the failed rows must be free again before any
        later row of their keys is claimed."""
        ids = [row.id for row in acknowledged]
        if not complete:
            try:
                await self._mark(connection, ids)
            finally:
                await connection.close()
            return
        await self._marks_done()  # the previous batch's
        self._unmarked.update(ids)

        async def mark() -> None:
            try:
                await self._mark(connection, ids)
            except Exception as error:
                log.warning("outbox relay: %d rows not marked, sent again: %s", len(ids), error)
            finally:
                self._unmarked.difference_update(ids)
                await connection.close()

        self._marker = asyncio.create_task(mark(), name="outbox-relay-mark")

    def _mark_in_background(self, rows: Sequence[PendingRow]) -> None:
        """SQLite: mark `rows` through the service's engine, where the marks queue with its
        writers: one mark transaction at a time, for every row acknowledged meanwhile. Until
        then the claims read past them. A failed mark leaves them to be sent again."""
        ids = [row.id for row in rows]
        self._unmarked.update(ids)
        self._to_mark += ids
        if self._marker is None or self._marker.done():
            self._marker = asyncio.create_task(self._mark_pending(), name="outbox-relay-mark")

    async def _mark_pending(self) -> None:
        while self._to_mark:
            ids, self._to_mark = self._to_mark, []
            try:
                async with self._engine.connect() as connection:
                    await self._mark(connection, ids)
            except Exception as error:
                log.warning("outbox relay: %d rows not marked, sent again: %s", len(ids), error)
            finally:
                self._unmarked.difference_update(ids)

    async def _marks_done(self) -> None:
        """Wait for the marks under way."""
        if self._marker is not None:
            await self._marker

    async def _publish_claimed(self, rows: Sequence[PendingRow]) -> list[PendingRow]:
        """`_publish` timed, with each row's wait since it was written; none when no rows."""
        if not rows:
            return []
        started = time.perf_counter()
        claimed_at = datetime.now(UTC)
        self.stats.wait_ms.extend(
            (claimed_at - _aware(row.created_at)).total_seconds() * 1000 for row in _sample(rows)
        )
        acknowledged = await self._publish(rows)
        self.stats.publish_ms.append((time.perf_counter() - started) * 1000)
        return acknowledged

    async def _mark(self, connection: AsyncConnection, ids: Sequence[int]) -> None:
        """Mark the rows of `ids` published on `connection` (PostgreSQL without a retention:
        delete them) and commit."""
        if not ids:
            return
        started = time.perf_counter()
        await connection.execute(
            self._mark_statement, {"ids": self._ids_parameter(ids), "now": datetime.now(UTC)}
        )
        await connection.commit()
        self.stats.mark_ms.append((time.perf_counter() - started) * 1000)

    async def cleanup(self) -> int:
        """Delete rows published longer than the retention ago; how many. On SQLite never the
        newest row: SQLite would give its id to the next row (the table has no AUTOINCREMENT),
        which a claim could take for a row in flight."""
        expired = _T.published_at < datetime.now(UTC) - self._retention
        if not self._postgresql:
            expired = expired & (_T.id < select(func.max(_T.id)).scalar_subquery())
        async with self._engine.begin() as connection:
            result = await connection.execute(delete(OUTBOX_TABLE).where(expired))
        deleted = int(result.rowcount or 0)
        self.stats.deleted += deleted
        return deleted

    async def pending(self) -> tuple[int, float]:
        """(rows not yet published, age in seconds of the oldest of them; 0 when none)."""
        async with self._engine.connect() as connection:
            count, oldest = (
                await connection.execute(
                    select(func.count(), func.min(_T.created_at)).where(_T.published_at.is_(None))
                )
            ).one()
        age = 0.0 if oldest is None else (datetime.now(UTC) - _aware(oldest)).total_seconds()
        return int(count), age

    async def _claim_sqlite(self, reader: _SqliteReader, excluded: set[int]) -> list[PendingRow]:
        """SQLite (one relay): the next pending rows in id order, but for those of `excluded`
        (this relay's own, sent or being marked)."""
        started = time.perf_counter()
        if excluded:
            claimed = await reader.rows(
                self._claim_excluding, {"ids": self._ids_parameter(excluded)}
            )
        else:
            claimed = await reader.rows(self._claim_all, {})
        self.stats.claim_ms.append((time.perf_counter() - started) * 1000)
        return claimed

    async def _claim(self, connection: AsyncConnection, excluded: set[int]) -> list[PendingRow]:
        """PostgreSQL: the next pending rows in id order, locked (others' locked rows skipped),
        but for those of `excluded` (this relay's own, sent or being marked) and the rows of a
        key whose earlier row another relay holds."""
        started = time.perf_counter()
        if excluded:
            statement, ours = self._claim_locked_excluding, {"excluded": list(excluded)}
        else:
            statement, ours = self._claim_locked, {}
        counted = (await connection.execute(statement, ours)).all()
        claimed = [_pending_row(row) for row in counted]
        self._backlog = len(claimed) == self._batch_size
        self.stats.claim_ms.append((time.perf_counter() - started) * 1000)
        if not counted or counted[0].pending_up_to_ours == len(claimed):
            return claimed
        elsewhere = await connection.execute(
            select(_T.partition_key, func.min(_T.id))
            .where(
                _T.published_at.is_(None),
                _T.partition_key.in_({row.partition_key for row in claimed}),
                ~_ids_in(True, "claimed"),
                _not_ours(bool(excluded)),
            )
            .group_by(_T.partition_key),
            ours | {"claimed": [row.id for row in claimed]},
        )
        first_elsewhere: dict[bytes, int] = {key: first for key, first in elsewhere.all()}
        # Rows of a key after one another relay holds would overtake it: left for later.
        return [
            row for row in claimed if row.id < first_elsewhere.get(row.partition_key, row.id + 1)
        ]

    async def _publish(self, rows: Sequence[PendingRow]) -> list[PendingRow]:
        """Send every row, then wait once; the rows acknowledged, up to each key's first
        failure (a later row of that key must not be marked while an earlier one is not)."""
        records = [(row.topic, row.value, row.partition_key, row.headers) for row in rows]
        results = await self._producer.send_many(records)
        failed_keys: set[bytes] = set()
        acknowledged = []
        for row, result in zip(rows, results, strict=True):
            if isinstance(result, BaseException) or row.partition_key in failed_keys:
                failed_keys.add(row.partition_key)
                if isinstance(result, BaseException):
                    log.warning("outbox relay: row %d not acknowledged: %s", row.id, result)
            else:
                acknowledged.append(row)
        return acknowledged

    def _ids_parameter(self, ids: Collection[int]) -> list[int] | str:
        """`ids` as `_ids_in`'s parameter takes them."""
        return list(ids) if self._postgresql else json.dumps(list(ids))

    async def _wait(self, seconds: float) -> None:
        """Up to `seconds`, until new rows are committed or the relay is stopped (a claim
        since `stop()` may have cleared its wake-up)."""
        if self._stopping.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def _pause(self, seconds: float) -> None:
        """`seconds`, unless the relay is stopped meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _listen(self) -> None:
        """PostgreSQL: LISTEN on the outbox channel while the relay runs (a connection of the
        engine's own, raw asyncpg), and again whenever that connection is lost. Each time it
        listens anew it wakes the relay: notifications sent meanwhile were lost (the polls
        found those rows in the meantime)."""
        retry_s = self._poll_interval_s

        def notified(*_: object) -> None:
            self._wake.set()

        while True:
            try:
                async with self._engine.connect() as connection:
                    driver = (await connection.get_raw_connection()).driver_connection
                    assert driver is not None
                    lost = asyncio.Event()
                    driver.add_termination_listener(lambda _, lost=lost: lost.set())
                    await driver.add_listener(NOTIFY_CHANNEL, notified)
                    try:
                        self._wake.set()
                        retry_s = self._poll_interval_s
                        await lost.wait()
                    finally:
                        with contextlib.suppress(Exception):
                            await driver.remove_listener(NOTIFY_CHANNEL, notified)
                    await connection.invalidate()
                log.warning("outbox relay: lost its LISTEN connection; listening again")
            except Exception as error:
                log.warning(
                    "outbox relay: cannot LISTEN for new rows, polling every %.1f s meanwhile: %s",
                    self._poll_interval_s,
                    error,
                )
            await asyncio.sleep(retry_s)
            retry_s = min(retry_s * 2, 5.0)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _locking_claim(batch_size: int, *, excluding: bool) -> Select[Any]:
    """PostgreSQL: the next `batch_size` pending rows, locked (others' locked rows skipped),
    each with `pending_up_to_ours`; with `excluding`, leaving out the ids of the `excluded`
    parameter. Built once per relay: building and keying it cost more of the claim's CPU than
    running it."""
    locked = _PENDING.limit(batch_size).with_for_update(skip_locked=True).cte("claimed")
    # Rows this relay sent, or whose mark is still committing, are locked (skipped above) and
    # pending; they are ours, so they hold nothing back (a key that fails in flight is dropped
    # from this claim by `_take_claim`).
    # In the same statement (one round trip, one snapshot): how many rows are pending up to our
    # last one. When that is all ours, no earlier row of any of our keys is held elsewhere (the
    # usual case, and always with one relay).
    pending_up_to_ours = (
        select(func.count())
        .where(
            _T.published_at.is_(None),
            _not_ours(excluding),
            _T.id <= select(func.max(locked.c.id)).scalar_subquery(),
        )
        .scalar_subquery()
    )
    return select(locked, pending_up_to_ours.label("pending_up_to_ours")).order_by(locked.c.id)


def _not_ours(excluding: bool) -> ColumnElement[bool]:
    """PostgreSQL: rows not in the `excluded` parameter (this relay's own, sent or being
    marked); every row when not `excluding`."""
    return ~_ids_in(True, "excluded") if excluding else true()


def _ids_in(postgresql: bool, name: str = "ids") -> ColumnElement[bool]:
    """`id IN :name` as one bound parameter `name`, however many ids: an array on PostgreSQL
    (a list of ints), a JSON list on SQLite (`_ids_parameter`). Rendered one parameter each, a
    batch's ids cost more CPU than the rest of the statement."""
    if postgresql:
        return _T.id == any_(bindparam(name, type_=ARRAY(BigInteger)))
    listed = func.json_each(bindparam(name, type_=String)).table_valued("value")
    return _T.id.in_(select(listed.c.value))


class _SqliteReader:
    """SQLite: where the relay reads its claims. A file: a connection of its own on a thread
    of its own, one hop from the event loop per claim (write-ahead logging lets it read while
    the service writes). A database in memory: the service's engine (another connection would
    see another database)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._shared: AsyncEngine | None = None
        self._blocking: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        if engine.url.database in (None, "", ":memory:"):
            self._shared = engine
        else:
            self._blocking = sqlite_blocking_engine(engine.url)
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-claims")

    async def rows(self, statement: Select[Any], parameters: dict[str, Any]) -> list[PendingRow]:
        """The rows `statement` selects with `parameters`, as `PendingRow`s."""
        if self._shared is not None:
            async with self._shared.connect() as connection:
                result = await connection.execute(statement, parameters)
                return [_pending_row(row) for row in result]
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, self._read, statement, parameters
        )

    def _read(self, statement: Select[Any], parameters: dict[str, Any]) -> list[PendingRow]:
        assert self._blocking is not None
        with self._blocking.connect() as connection:
            return [_pending_row(row) for row in connection.execute(statement, parameters)]

    async def close(self) -> None:
        """Close its connection and thread."""
        if self._blocking is not None and self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._blocking.dispose)
            self._thread.shutdown(wait=False)


def _sample(rows: Sequence[PendingRow]) -> Sequence[PendingRow]:
    """At most about `_SAMPLES_PER_BATCH` rows spread over the batch, for the delay figures."""
    return rows[:: max(1, len(rows) // _SAMPLES_PER_BATCH)]


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes: they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
