"""EventPublisher: what a write service calls to publish a domain event.

Built on FastStream's KafkaBroker (it fits: plain keyed publishing, and TestKafkaBroker lets a
service unit-test its publishing without a broker). The producer is idempotent with `acks=all`,
so a publish that returned is on every in-sync replica and a retry never duplicates it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from types import TracebackType
from typing import Self

from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from contracts.connections import KafkaConnection
from contracts.events import DomainEvent, EventEnvelope, TraceContext

_SASL = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


def broker_security(kafka: KafkaConnection) -> BaseSecurity | None:
    """FastStream's security object for these connection settings (None for PLAINTEXT)."""
    ssl_context = kafka.tls.context() if kafka.tls else None
    use_ssl = kafka.security_protocol in ("SSL", "SASL_SSL")
    if kafka.sasl_mechanism:
        password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
        return _SASL[kafka.sasl_mechanism](
            kafka.sasl_username or "", password, ssl_context=ssl_context, use_ssl=use_ssl
        )
    if use_ssl:
        return BaseSecurity(ssl_context=ssl_context, use_ssl=True)
    return None


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
        self.broker = KafkaBroker(
            kafka.bootstrap_servers,
            security=broker_security(kafka),
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            client_id=client_id or source,
            allow_auto_create_topics=False,
            logger=None,
        )

    async def start(self) -> None:
        """Connect to the brokers."""
        await self.broker.start()

    async def stop(self) -> None:
        """Flush what is pending and disconnect."""
        await self.broker.stop()

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
        trace: the W3C trace context of the write.
        """
        envelope = EventEnvelope.wrap(
            event,
            source=self.source,
            tenant=tenant,
            aggregate_version=aggregate_version,
            event_id=event_id,
            occurred_at=occurred_at,
            trace=trace,
        )
        await self.publish_envelope(envelope, topic=event.topic)
        return envelope

    async def publish_envelope(self, envelope: EventEnvelope, *, topic: str) -> None:
        """Publish an envelope built earlier (the outbox relay's path)."""
        await self.broker.publish(
            envelope.to_bytes(),
            topic,
            key=envelope.partition_key(),
            headers=envelope.headers(),
            correlation_id=str(envelope.event_id),
        )
