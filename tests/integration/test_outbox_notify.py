"""PostgreSQL: the writing process notifies the relays after its commits, outside the writers'
transactions, one NOTIFY at a time; every commit is still followed by one."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from contracts.example_orders import OrderStatusChanged
from invalidator import InvalidatorSettings
from producers.outbox import OutboxRelay, add_event, create_outbox_table
from producers.outbox.wake import NOTIFY_CHANNEL
from tests.relay_fakes import running
from tests.waiting import wait_until

WRITERS = 30


@pytest.fixture
async def writers(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """The writers' engine (a connection each), as another process's would be."""
    engine = create_async_engine(postgres_url, pool_size=WRITERS + 2)
    await create_outbox_table(engine)
    yield engine
    await engine.dispose()


async def _add_an_event(connection: AsyncConnection, order_id: str, company_id: str) -> None:
    """Add an order's status change to the outbox in the connection's transaction."""
    await add_event(
        connection,
        OrderStatusChanged(
            order_id=order_id, company_id=company_id, old_status="placed", new_status="paid"
        ),
        source="notify-test",
        tenant="t",
        aggregate_version=1,
    )


async def _commit_together(engine: AsyncEngine, barrier: asyncio.Barrier, n: int) -> None:
    """One transaction adding an event, committed as the others are."""
    async with engine.connect() as connection:
        await connection.begin()
        await _add_an_event(connection, f"o-{n}-{uuid.uuid4().hex[:6]}", "c-notify")
        await barrier.wait()
        await connection.commit()


async def test_a_burst_of_commits_is_relayed_without_polling_on_fewer_notifies(
    writers: AsyncEngine, postgres_url: str, settings: InvalidatorSettings
) -> None:
    notified: list[int] = []
    listener = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg", "postgresql"))
    await listener.add_listener(NOTIFY_CHANNEL, lambda *_: notified.append(1))
    relay_engine = create_async_engine(postgres_url)
    # Its poll is far longer than the test: only a NOTIFY after the last commit can wake it.
    relay = OutboxRelay(relay_engine, settings.kafka, poll_interval_s=60.0)
    await relay.start()
    try:
        async with running(relay):
            barrier = asyncio.Barrier(WRITERS)
            await asyncio.gather(*(_commit_together(writers, barrier, n) for n in range(WRITERS)))

            async def all_relayed() -> bool:
                return relay.stats.published == WRITERS

            await wait_until(all_relayed, within=5, what=f"{WRITERS} rows relayed within 5 s")

        async def notified_once() -> bool:
            return len(notified) >= 1

        await wait_until(notified_once, within=5, what="a NOTIFY on the outbox channel")
        # Commits that came in while a NOTIFY was under way shared the next one: a NOTIFY in
        # each transaction would have made one per commit (and serialised the commits).
        assert len(notified) < WRITERS, f"{len(notified)} NOTIFYs for {WRITERS} commits"
    finally:
        await listener.close()
        await relay_engine.dispose()


async def test_commits_are_notified_in_an_event_loop_after_the_first_one_closed(
    postgres_url: str,
) -> None:
    # An engine without a pool of connections can serve one event loop after another (a
    # script's successive `asyncio.run` calls): each loop's commits must be followed by a NOTIFY.
    engine = create_async_engine(postgres_url, poolclass=NullPool)
    await create_outbox_table(engine)

    async def commit_one() -> None:
        async with engine.begin() as connection:
            await _add_an_event(connection, f"o-{uuid.uuid4().hex[:6]}", "c-loops")

    notified = asyncio.Event()
    listener = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await asyncio.to_thread(asyncio.run, commit_one())  # a loop closed when it returns
        await listener.add_listener(NOTIFY_CHANNEL, lambda *_: notified.set())
        await commit_one()
        await asyncio.wait_for(notified.wait(), timeout=10)
    finally:
        await listener.close()
        await engine.dispose()
