"""The relay sends each row's record with the envelope's headers, in the envelope's order: made
from the row's columns, and from its `headers` JSON where a writer of the version before those
columns left them empty (during a rolling upgrade). A producer that keeps what it is given stands
in for Kafka; the outbox is a SQLite file."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts.connections import KafkaConnection
from contracts.events import EventEnvelope
from contracts.example_orders import OrderCancelled
from producers import EnvelopeToPublish
from producers.outbox import OUTBOX_TABLE, OutboxRelay, add_events, create_outbox_table, ddl
from tests.relay_fakes import TOPIC, Acknowledging


class Keeping(Acknowledging):
    """Acknowledges every record and keeps each one whole: (topic, value, key, headers)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]] = []

    async def send_many(
        self, records: Sequence[tuple[str, bytes, bytes, list[tuple[str, bytes]]]]
    ) -> list[Any]:
        """As `Acknowledging.send_many`, keeping the records."""
        self.records += [
            (topic, value, key, list(headers)) for topic, value, key, headers in records
        ]
        return await super().send_many(records)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A table made by the version before the two columns, then brought up to date (which adds
    them nullable: an older writer still running leaves them empty)."""
    created = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    made_before = re.sub(r"\n\s*(event_type|schema_version) [^\n]*,", "", ddl("sqlite"))
    assert "event_type" not in made_before.split(";")[0]
    async with created.begin() as connection:
        for statement in made_before.split(";"):
            if statement.strip():
                await connection.exec_driver_sql(statement)
    await create_outbox_table(created)
    yield created
    await created.dispose()


def _envelope(order_id: str) -> EventEnvelope:
    event = OrderCancelled(order_id=order_id, company_id="c-1", reason="x")
    return EventEnvelope.wrap(event, source="tests", tenant="acme", aggregate_version=1)


async def test_records_carry_the_envelopes_headers_from_the_columns_or_the_json(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    current, older = _envelope("a"), _envelope("b")
    async with engine.begin() as connection:
        await add_events(
            connection, [EnvelopeToPublish(e, TOPIC) for e in (current, older)], source="tests"
        )
        # As a writer of the version before the columns left its row.
        await connection.execute(
            update(OUTBOX_TABLE)
            .where(OUTBOX_TABLE.c.event_id == str(older.event_id))
            .values(event_type=None, schema_version=None)
        )
    relay = OutboxRelay(engine, KafkaConnection())
    kafka = Keeping()
    monkeypatch.setattr(relay, "_producer", kafka)

    assert await relay.relay_once() == 2
    expected = [
        (TOPIC, envelope.to_bytes(), envelope.partition_key(), _as_kafka_takes(envelope))
        for envelope in (current, older)
    ]
    assert kafka.records == expected


def _as_kafka_takes(envelope: EventEnvelope) -> list[tuple[str, bytes]]:
    return [(name, text.encode()) for name, text in envelope.headers().items()]
