"""Adding events to the outbox inside the service's own transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from contracts.events import DomainEvent, EventEnvelope, TraceContext
from producers.outbox.table import OUTBOX_TABLE
from producers.outbox.wake import notify_after_commit, tag_outbox_rows
from producers.publisher import EnvelopeToPublish, EventToPublish, envelope_and_topic


async def add_events(
    session: AsyncSession | AsyncConnection,
    batch: Iterable[EventToPublish | EnvelopeToPublish],
    *,
    source: str,
) -> list[EventEnvelope]:
    """Insert one outbox row per item in the caller's transaction (no commit here); the
    envelopes, in order.

    session: the service's SQLAlchemy session or connection, inside the transaction that makes
        the change: the rows commit with it or not at all.
    batch: the same items as `EventPublisher.publish_many` takes: events (wrapped here, their
        ids fixed now) or envelopes built earlier with their topic.
    source: this service's name, written into every envelope wrapped here.
    """
    now = datetime.now(UTC)
    outgoing = [envelope_and_topic(item, source=source) for item in batch]
    if not outgoing:
        return []
    rows = [
        {
            "event_id": str(envelope.event_id),
            "topic": topic,
            "partition_key": envelope.partition_key(),
            "headers": envelope.headers(),
            "event_type": envelope.type,
            "schema_version": str(envelope.schema_version),
            "value": envelope.to_bytes(),
            "created_at": now,
        }
        for envelope, topic in outgoing
    ]
    await session.execute(insert(OUTBOX_TABLE), rows)
    connection = await session.connection() if isinstance(session, AsyncSession) else session
    # When the connection is returned after the commit, a relay of this process on the same
    # engine is woken, and on PostgreSQL the relays of every process are notified.
    if connection.sync_connection is not None:
        tag_outbox_rows(connection.sync_connection)
    if connection.dialect.name == "postgresql":
        notify_after_commit(connection.engine)
    return [envelope for envelope, _ in outgoing]


async def add_event(
    session: AsyncSession | AsyncConnection,
    event: DomainEvent,
    *,
    source: str,
    tenant: str,
    aggregate_version: int,
    trace: TraceContext | None = None,
) -> EventEnvelope:
    """Add one event as `EventPublisher.publish` would publish it; its envelope (whose id
    consumers will see).

    session: as for `add_events`.
    source: this service's name.
    tenant: the tenant the write belongs to.
    aggregate_version: the aggregate's version after this change.
    trace: the W3C trace context of the write; the current OpenTelemetry span's when omitted
        and OpenTelemetry is installed.
    """
    item = EventToPublish(event, tenant=tenant, aggregate_version=aggregate_version, trace=trace)
    (envelope,) = await add_events(session, [item], source=source)
    return envelope
