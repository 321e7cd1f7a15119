"""The outbox relay marks exactly the rows Kafka acknowledged, and never a row after its key's
first unacknowledged one, even when Kafka acknowledged that later row (a producer whose sends
fail for chosen rows stands in for Kafka; the outbox is a SQLite file)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts.connections import KafkaConnection
from contracts.events import HEADER_EVENT_ID, EventEnvelope
from contracts.example_orders import OrderCancelled
from producers import EnvelopeToPublish
from producers.outbox import OUTBOX_TABLE, OutboxRelay, add_events, create_outbox_table

TOPIC = "orders.events"


class ChosenFailures:
    """Stands in for the relay's producer: a send of a chosen event id fails with `error`, every
    other send is acknowledged; what was sent is kept in order."""

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


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    created = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    await create_outbox_table(created)
    yield created
    await created.dispose()


async def _write(engine: AsyncEngine, order_id: str, version: int) -> str:
    event = OrderCancelled(order_id=order_id, company_id="c-1", reason="x")
    envelope = EventEnvelope.wrap(event, source="tests", tenant="acme", aggregate_version=version)
    async with engine.begin() as connection:
        await add_events(connection, [EnvelopeToPublish(envelope, TOPIC)], source="tests")
    return str(envelope.event_id)


async def _marked(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(OUTBOX_TABLE.c.event_id).where(OUTBOX_TABLE.c.published_at.is_not(None))
        )
    return {event_id for (event_id,) in rows}


@pytest.mark.parametrize(
    "error",
    [
        MessageSizeTooLargeError(),  # refused by the broker
        KafkaTimeoutError(),  # never acknowledged within the delivery timeout
    ],
    ids=["refused", "never-acknowledged"],
)
async def test_rows_after_a_keys_failed_row_stay_unmarked_even_when_acknowledged(
    engine: AsyncEngine, error: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    a1, b1, a2, a3, b2 = [
        await _write(engine, order_id, version)
        for order_id, version in (("a", 1), ("b", 1), ("a", 2), ("a", 3), ("b", 2))
    ]
    relay = OutboxRelay(engine, KafkaConnection())
    kafka = ChosenFailures({a1}, error)
    monkeypatch.setattr(relay, "_producer", kafka)

    assert await relay.relay_once() == 2
    assert kafka.sent == [a1, b1, a2, a3, b2]
    assert await _marked(engine) == {b1, b2}, "a row after its key's failed row was marked"
    assert relay.stats.publish_failures == 1

    kafka.failing.clear()  # Kafka takes them now
    assert await relay.relay_once() == 3
    assert kafka.sent[5:] == [a1, a2, a3], "not sent again in order"
    assert await _marked(engine) == {a1, a2, a3, b1, b2}
    assert await relay.pending() == (0, 0.0)
