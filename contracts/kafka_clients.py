"""The Kafka clients of a `KafkaConnection`: the one place they are constructed.

The publisher (FastStream), the outbox relay, the invalidator's consumer and dead-letter
producer, and the operator commands all connect here, so the servers, TLS and SASL options, and
the producers' delivery guarantee cannot drift between them. Every producer is idempotent with
`acks=all` (aiokafka's own default is `acks=1` without idempotence: a record acknowledged by
the leader alone is lost when that leader fails before a follower copied it). Building a client
does no I/O: it connects on `start()`.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from contracts.connections import KafkaConnection

IDEMPOTENT_DELIVERY: dict[str, Any] = {"acks": "all", "enable_idempotence": True}
"""The producer options of every producer: acknowledged by every in-sync replica, and a retry
never duplicates a record or reorders a partition."""

DEFAULT_MAX_REQUEST_BYTES = 1_048_576
"""The largest request a producer sends unless told otherwise: the broker's default
`message.max.bytes` (1 MiB, less its batch overhead). A larger record is refused by the client
before a sequence number is spent; pass `max_request_size` where a topic accepts more."""

_SASL = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


def kafka_consumer(kafka: KafkaConnection, **options: Any) -> AIOKafkaConsumer:
    """A consumer of `kafka` that commits only when told (auto-commit is off).

    kafka: the cluster, with its TLS and SASL settings.
    options: aiokafka's consumer options besides the connection's (group_id, client_id,
        auto_offset_reset, isolation_level, fetch and heartbeat timings).
    """
    return AIOKafkaConsumer(enable_auto_commit=False, **options, **kafka.client_kwargs())


def kafka_admin(kafka: KafkaConnection) -> AIOKafkaAdminClient:
    """An admin client of `kafka` (offsets, groups, topics).

    kafka: the cluster, with its TLS and SASL settings.
    """
    return AIOKafkaAdminClient(**kafka.client_kwargs())


def idempotent_producer(
    kafka: KafkaConnection,
    *,
    client_id: str,
    max_request_size: int = DEFAULT_MAX_REQUEST_BYTES,
    linger_ms: int = 0,
) -> AIOKafkaProducer:
    """An idempotent `acks=all` producer of `kafka`.

    kafka: the cluster, with its TLS and SASL settings.
    client_id: the Kafka client id (in the broker's logs, quotas and ACL errors).
    max_request_size: the largest request sent; a larger record raises
        `MessageSizeTooLargeError` before it is sent.
    linger_ms: how long records wait to be batched (latency against throughput).
    """
    return AIOKafkaProducer(
        **IDEMPOTENT_DELIVERY,
        client_id=client_id,
        max_request_size=max_request_size,
        linger_ms=linger_ms,
        **kafka.client_kwargs(),
    )


def idempotent_broker(kafka: KafkaConnection, *, client_id: str, linger_ms: int = 0) -> KafkaBroker:
    """FastStream's broker of `kafka`, publishing with an idempotent `acks=all` producer and
    creating no topic by publishing to it.

    kafka: the cluster, with its TLS and SASL settings.
    client_id: the Kafka client id.
    linger_ms: how long records wait to be batched (latency against throughput).
    """
    return KafkaBroker(
        # A list: FastStream passes a string on as the only server, commas and all.
        [server.strip() for server in kafka.bootstrap_servers.split(",")],
        security=broker_security(kafka),
        **IDEMPOTENT_DELIVERY,
        linger_ms=linger_ms,
        client_id=client_id,
        allow_auto_create_topics=False,
        logger=None,
    )


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
