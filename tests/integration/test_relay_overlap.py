"""On PostgreSQL the relay claims and sends the next batch while the previous batch's mark is
still committing, and its own rows under that mark hold none of their keys back (several
relays' key-order check would otherwise take them for another relay's rows). Nothing is sent
twice, and every row ends marked. (A producer that acknowledges everything stands in for
Kafka; the outbox is a PostgreSQL database of this test.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from contracts.connections import KafkaConnection
from producers.outbox import OutboxRelay, create_outbox_table
from tests.relay_fakes import Acknowledging, published_ids, write_row
from tests.waiting import wait_until


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    created = create_async_engine(database_url)
    await create_outbox_table(created)
    yield created
    await created.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_the_next_batch_goes_out_while_the_last_mark_commits_with_its_keys_not_held_back(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = OutboxRelay(engine, KafkaConnection())
    kafka = Acknowledging()
    monkeypatch.setattr(relay, "_producer", kafka)
    gate = asyncio.Event()
    original_mark = relay._mark
    marks = 0

    async def first_mark_gated(connection: AsyncConnection, ids: Sequence[int]) -> None:
        nonlocal marks
        marks += 1
        if marks == 1:
            await gate.wait()
        await original_mark(connection, ids)

    monkeypatch.setattr(relay, "_mark", first_mark_gated)
    first = [await write_row(engine, order_id, 1) for order_id in ("a", "b")]
    assert await relay._relay_batch() == 2  # its mark waits at the gate, its rows locked
    second = [await write_row(engine, order_id, 2) for order_id in ("a", "b")]
    second.append(await write_row(engine, "c", 1))
    next_batch = asyncio.create_task(relay._relay_batch())

    async def sent_all() -> bool:
        return len(kafka.sent) == 5

    try:
        await wait_until(sent_all, within=10, what="the next batch sent before the last mark")
        assert kafka.sent == first + second, "sent twice, out of order, or held back"
        assert await published_ids(engine) == set(), "the first mark committed before the gate"
    finally:
        gate.set()
    assert await next_batch == 3
    assert await relay.relay_once() == 0  # and waits for the marks
    assert await published_ids(engine) == set(first + second)
    assert await relay.pending() == (0, 0.0)
    await relay.stop_producer()
