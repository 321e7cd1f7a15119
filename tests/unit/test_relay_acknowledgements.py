"""The outbox relay marks exactly the rows Kafka acknowledged, and never a row after its key's
first unacknowledged one, even when Kafka acknowledged that later row (a producer whose sends
fail for chosen rows stands in for Kafka; the outbox is a SQLite file)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts.connections import KafkaConnection
from producers.outbox import OutboxRelay, create_outbox_table
from tests.relay_fakes import ChosenFailures, published_ids, write_row


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    created = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    await create_outbox_table(created)
    yield created
    await created.dispose()


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
        await write_row(engine, order_id, version)
        for order_id, version in (("a", 1), ("b", 1), ("a", 2), ("a", 3), ("b", 2))
    ]
    relay = OutboxRelay(engine, KafkaConnection())
    kafka = ChosenFailures({a1}, error)
    monkeypatch.setattr(relay, "_producer", kafka)

    assert await relay.relay_once() == 2
    assert kafka.sent == [a1, b1, a2, a3, b2]
    assert await published_ids(engine) == {b1, b2}, "a row after its key's failed row was marked"
    assert relay.stats.publish_failures == 1

    kafka.failing.clear()  # Kafka takes them now
    assert await relay.relay_once() == 3
    assert kafka.sent[5:] == [a1, a2, a3], "not sent again in order"
    assert await published_ids(engine) == {a1, a2, a3, b1, b2}
    assert await relay.pending() == (0, 0.0)
