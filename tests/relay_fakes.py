"""Stand-ins for the outbox relay's Kafka producer, and the outbox rows the relay tests write
and read back (the relay's own code runs unchanged on a real database)."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.events import HEADER_EVENT_ID, EventEnvelope
from contracts.example_orders import OrderCancelled
from producers import EnvelopeToPublish
from producers.outbox import OUTBOX_TABLE, OutboxRelay, add_events
from tests.waiting import wait_until

TOPIC = "orders.events"


class ChosenFailures:
    """Stands in for the relay's producer: a send of a chosen event id fails with `error`, every
    other send is acknowledged; what was sent is kept in order. Stopping it does nothing."""

    def __init__(self, failing: set[str], error: Exception) -> None:
        self.failing = failing
        self.error = error
        self.sent: list[str] = []

    async def send(
        self, topic: str, value: bytes, *, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        event_id = dict(headers)[HEADER_EVENT_ID].decode()
        self.sent.append(event_id)
        outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if event_id in self.failing:
            outcome.set_exception(self.error)
        else:
            outcome.set_result(None)
        return outcome

    async def send_many(
        self,
        records: Sequence[tuple[str, bytes, bytes, list[tuple[str, bytes]]]],
    ) -> list[Any]:
        """`send` for each record, then each result or exception (as
        `RenewingProducer.send_many`)."""
        sent = [
            await self.send(topic, value, key=key, headers=headers)
            for topic, value, key, headers in records
        ]
        return [future.exception() or future.result() for future in sent]

    async def stop(self) -> None:
        pass


class Acknowledging(ChosenFailures):
    """Acknowledges every send."""

    def __init__(self) -> None:
        super().__init__(set(), RuntimeError("unused"))


class HeldAcknowledgements(Acknowledging):
    """Acknowledges every send, the first batch only once `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def send_many(
        self, records: Sequence[tuple[str, bytes, bytes, list[tuple[str, bytes]]]]
    ) -> list[Any]:
        """As `ChosenFailures.send_many`, after `release` for the first batch."""
        first = not self.sent
        results = await super().send_many(records)
        if first:
            await self.release.wait()
        return results


async def write_row(engine: AsyncEngine, order_id: str, version: int) -> str:
    """One transaction adding one event of the order's key to the outbox; its event id."""
    event = OrderCancelled(order_id=order_id, company_id="c-1", reason="x")
    envelope = EventEnvelope.wrap(event, source="tests", tenant="acme", aggregate_version=version)
    async with engine.begin() as connection:
        await add_events(connection, [EnvelopeToPublish(envelope, TOPIC)], source="tests")
    event_id = str(envelope.event_id)
    _written.setdefault(engine.sync_engine, []).append(event_id)
    return event_id


_written: weakref.WeakKeyDictionary[Engine, list[str]] = weakref.WeakKeyDictionary()
"""The event ids `write_row` wrote, per engine."""


async def published_ids(engine: AsyncEngine, written: Iterable[str] | None = None) -> set[str]:
    """The event ids among `written` (by default, those `write_row` wrote on `engine`) whose
    rows the relay marked: deleted (without a retention) or marked published (with one)."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(OUTBOX_TABLE.c.event_id).where(OUTBOX_TABLE.c.published_at.is_(None))
        )
    pending = {event_id for (event_id,) in rows}
    chosen = _written.get(engine.sync_engine, []) if written is None else written
    return set(chosen) - pending


@contextlib.asynccontextmanager
async def running(relay: OutboxRelay) -> AsyncIterator[None]:
    """`relay.run()` in a task for the block; then stopped, and its producer too."""
    task = asyncio.create_task(relay.run())
    try:
        yield
    finally:
        relay.stop()
        await asyncio.wait_for(task, timeout=10)
        await relay.stop_producer()


async def assert_each_write_wakes(
    relay: OutboxRelay, write: Callable[[int], Awaitable[object]], *, writes: int = 2
) -> None:
    """Run `relay` (its poll far longer than the test) and call `write(n)` for n = 1..`writes`,
    each committing one row: every row must be relayed within 5 s, so something other than the
    poll woke the relay (the first may be found by its first look). Stops the relay."""
    async with running(relay):
        for expected in range(1, writes + 1):
            await write(expected)

            async def relayed(expected: int = expected) -> bool:
                return relay.stats.published == expected

            await wait_until(relayed, within=5, what=f"row {expected} relayed within 5 s")
