"""EventPublisher: what a write service calls to publish a domain event.

Built on FastStream's KafkaBroker (it fits: plain keyed publishing, and TestKafkaBroker lets a
service unit-test its publishing without a broker). The producer is idempotent with `acks=all`,
so a publish that returned is on every in-sync replica and a retry never duplicates it.

After a publish failed, the next one first replaces the broker with a new one (a new producer
session): aiokafka keeps a failed batch's sequence number spent, and the brokers would refuse
every later record of that partition (`contracts.renewing_producer` says more).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from faststream.kafka import KafkaBroker

from contracts.connections import KafkaConnection
from contracts.events import DomainEvent, EventEnvelope, TraceContext
from contracts.kafka_clients import idempotent_broker
from contracts.renewing_producer import RenewingSession
from producers.trace_context import current_trace

_MAX_NAMED_FAILURES = 5


@dataclass(frozen=True, slots=True)
class EventToPublish:
    """One event of a batch for `EventPublisher.publish_many`, with its envelope fields."""

    event: DomainEvent
    """The typed payload."""
    tenant: str
    """The tenant id."""
    aggregate_version: int
    """The aggregate's version after this change."""
    event_id: uuid.UUID | None = None
    """A fixed id (e.g. from an outbox row) so that a retry is deduplicated."""
    occurred_at: datetime | None = None
    """When the change happened; now when omitted."""
    trace: TraceContext | None = None
    """The W3C trace context of the write; the current OpenTelemetry span's when omitted."""


@dataclass(frozen=True, slots=True)
class EnvelopeToPublish:
    """An envelope built earlier (an outbox row) and the topic it goes to."""

    envelope: EventEnvelope
    topic: str


class PublishBatchError(RuntimeError):
    """Some events of a batch were not acknowledged; retry them (their ids dedupe downstream).

    `failed` maps each unacknowledged envelope to its error; `acknowledged` lists the others.
    """

    def __init__(
        self,
        failed: list[tuple[EventEnvelope, BaseException]],
        acknowledged: list[EventEnvelope],
    ) -> None:
        """failed: the envelopes that were not acknowledged, each with its error.
        acknowledged: the envelopes the brokers acknowledged.
        """
        named = ", ".join(
            f"{envelope.event_id} ({error!r})" for envelope, error in failed[:_MAX_NAMED_FAILURES]
        )
        more = len(failed) - _MAX_NAMED_FAILURES
        super().__init__(
            f"{len(failed)} of {len(failed) + len(acknowledged)} events were not acknowledged: "
            f"{named}{f' and {more} more' if more > 0 else ''}; publish them again"
        )
        self.failed = failed
        self.acknowledged = acknowledged


class EventPublisher:
    """Publishes domain events, keyed by aggregate, with type and version as headers.

    Use it as an async context manager, or call `start()` and `stop()`.
    """

    def __init__(
        self,
        kafka: KafkaConnection,
        *,
        source: str,
        linger_ms: int = 0,
        client_id: str | None = None,
    ) -> None:
        """kafka: how to reach the brokers.
        source: this service's name, written into every envelope.
        linger_ms: how long the producer waits to batch records (latency vs throughput).
        client_id: the Kafka client id; defaults to `source`.
        """
        self.source = source

        def new_broker() -> KafkaBroker:
            return idempotent_broker(kafka, client_id=client_id or source, linger_ms=linger_ms)

        self._brokers = RenewingSession(new_broker, name=f"publisher {source}")

    @property
    def broker(self) -> KafkaBroker:
        """The FastStream broker publishing now (a new one replaces it after a failed publish)."""
        return self._brokers.session

    @property
    def renewals(self) -> int:
        """How many times a new broker replaced one whose publish failed."""
        return self._brokers.renewals

    async def start(self) -> None:
        """Connect to the brokers."""
        await self._brokers.start()

    async def stop(self) -> None:
        """Flush what is pending and disconnect."""
        await self._brokers.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def publish(
        self,
        event: DomainEvent,
        *,
        tenant: str,
        aggregate_version: int,
        event_id: uuid.UUID | None = None,
        occurred_at: datetime | None = None,
        trace: TraceContext | None = None,
    ) -> EventEnvelope:
        """Publish `event` and return its envelope once the brokers acknowledged it.

        event: the typed payload.
        tenant: the tenant id.
        aggregate_version: the aggregate's version after this change.
        event_id: a fixed id (e.g. from an outbox row) so that a retry is deduplicated.
        occurred_at: when the change happened; now when omitted.
        trace: the W3C trace context of the write; the current OpenTelemetry span's when
            omitted and OpenTelemetry is installed.
        """
        envelope = EventEnvelope.wrap(
            event,
            source=self.source,
            tenant=tenant,
            aggregate_version=aggregate_version,
            event_id=event_id,
            occurred_at=occurred_at,
            trace=trace or current_trace(),
        )
        await self.publish_envelope(envelope, topic=event.topic)
        return envelope

    async def publish_envelope(self, envelope: EventEnvelope, *, topic: str) -> None:
        """Publish an envelope built earlier (the outbox relay's path)."""
        broker = await self._brokers.current()
        try:
            await broker.publish(
                envelope.to_bytes(),
                topic,
                key=envelope.partition_key(),
                headers=envelope.headers(),
                correlation_id=str(envelope.event_id),
            )
        except Exception:
            self._brokers.failed(broker)
            raise

    async def publish_many(
        self, batch: Iterable[EventToPublish | EnvelopeToPublish]
    ) -> list[EventEnvelope]:
        """Publish a batch and wait once, for all acknowledgements; the envelopes, in order.

        batch: events (wrapped here, as `publish` does) or envelopes built earlier with their
            topic (an outbox relay's rows), in the order they must keep per aggregate.

        Each record is keyed by its aggregate and carries the same headers as with `publish`;
        the producer is the same idempotent `acks=all` one, so records of one aggregate keep
        the batch's order on their partition, retries included. Nothing is dropped silently:
        when any record is not acknowledged, every other send is still awaited and
        PublishBatchError names the failed envelopes (and the acknowledged ones).
        """
        outgoing = [envelope_and_topic(item, source=self.source) for item in batch]
        broker = await self._brokers.current()
        pending: list[tuple[EventEnvelope, Any]] = []
        failed: list[tuple[EventEnvelope, BaseException]] = []
        for envelope, topic in outgoing:
            try:
                # Enqueued in call order into the producer's per-partition batches; the send
                # itself is confirmed below, once for the whole batch.
                confirmation = await broker.publish(
                    envelope.to_bytes(),
                    topic,
                    key=envelope.partition_key(),
                    headers=envelope.headers(),
                    correlation_id=str(envelope.event_id),
                    no_confirm=True,
                )
            except Exception as error:  # the rest of the batch must not overtake it
                self._brokers.failed(broker)
                failed.extend((later, error) for later, _ in outgoing[len(pending) :])
                break
            pending.append((envelope, confirmation))
        awaited = [c for _, c in pending if isinstance(c, asyncio.Future)]
        results = iter(await asyncio.gather(*awaited, return_exceptions=True))
        acknowledged: list[EventEnvelope] = []
        sent_failures: list[tuple[EventEnvelope, BaseException]] = []
        for envelope, confirmation in pending:
            # TestKafkaBroker delivers in the call and returns no future.
            result = next(results) if isinstance(confirmation, asyncio.Future) else None
            if isinstance(result, BaseException):
                sent_failures.append((envelope, result))
            else:
                acknowledged.append(envelope)
        if sent_failures:
            self._brokers.failed(broker)
        failed = sent_failures + failed
        if failed:
            raise PublishBatchError(failed, acknowledged)
        return acknowledged


def envelope_and_topic(
    item: EventToPublish | EnvelopeToPublish, *, source: str
) -> tuple[EventEnvelope, str]:
    """The envelope of a batch item (wrapped now for an event, as `publish` does) and its
    topic: what `publish_many` sends and what the outbox stores."""
    if isinstance(item, EnvelopeToPublish):
        return item.envelope, item.topic
    envelope = EventEnvelope.wrap(
        item.event,
        source=source,
        tenant=item.tenant,
        aggregate_version=item.aggregate_version,
        event_id=item.event_id,
        occurred_at=item.occurred_at,
        trace=item.trace or current_trace(),
    )
    return envelope, item.event.topic
