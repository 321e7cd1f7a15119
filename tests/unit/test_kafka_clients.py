"""The Kafka client factory: every producer is idempotent with acks=all, every client gets the
connection's TLS and SASL options, and no other module of the packages builds a Kafka client."""

from __future__ import annotations

import ast
from pathlib import Path

from pydantic import SecretStr

from contracts.connections import KafkaConnection
from contracts.kafka_clients import (
    DEFAULT_MAX_REQUEST_BYTES,
    idempotent_broker,
    idempotent_producer,
    kafka_admin,
    kafka_consumer,
)

REPO = Path(__file__).resolve().parents[2]
CLIENT_CLASSES = {"AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaAdminClient", "KafkaBroker"}
FACTORY = REPO / "contracts" / "kafka_clients.py"
NEVER_CONNECTS = {REPO / "invalidator" / "operators" / "_asyncapi.py"}
"""Builds a broker only to describe the topics in AsyncAPI; it never connects."""

SASL = KafkaConnection(
    bootstrap_servers="127.0.0.1:1",
    security_protocol="SASL_PLAINTEXT",
    sasl_mechanism="SCRAM-SHA-512",
    sasl_username="invalidator",
    sasl_password=SecretStr("s3cret"),
)


def _client_constructions(path: Path) -> list[str]:
    """`file:line class` of every call of a Kafka client class in `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            called = node.func
            name = called.id if isinstance(called, ast.Name) else getattr(called, "attr", "")
            if name in CLIENT_CLASSES:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {name}")
    return found


def test_no_module_but_the_factory_builds_a_kafka_client() -> None:
    elsewhere = [
        construction
        for package in ("contracts", "producers", "invalidator")
        for path in sorted((REPO / package).rglob("*.py"))
        if path != FACTORY and path not in NEVER_CONNECTS
        for construction in _client_constructions(path)
    ]
    assert elsewhere == []
    assert _client_constructions(FACTORY), "the factory builds them"


async def test_a_producer_is_idempotent_with_acks_all_and_the_connections_options() -> None:
    producer = idempotent_producer(SASL, client_id="relay")
    # aiokafka's defaults are acks=1 without idempotence: read what the client will really do.
    assert producer._sender._acks == -1
    assert producer._txn_manager is not None, "idempotence is on"
    assert producer._max_request_size == DEFAULT_MAX_REQUEST_BYTES
    assert producer.client._client_id == "relay"
    assert producer.client._sasl_mechanism == "SCRAM-SHA-512"
    assert producer.client._sasl_plain_username == "invalidator"
    assert producer.client._sasl_plain_password == "s3cret"
    larger = idempotent_producer(SASL, client_id="redrive", max_request_size=3_000_000)
    assert larger._max_request_size == 3_000_000


async def test_a_consumer_commits_only_when_told_and_gets_the_connections_options() -> None:
    consumer = kafka_consumer(SASL, group_id="invalidator.eu", isolation_level="read_committed")
    assert consumer._enable_auto_commit is False
    assert consumer._group_id == "invalidator.eu"
    assert consumer._client._security_protocol == "SASL_PLAINTEXT"
    assert consumer._client._sasl_plain_password == "s3cret"
    await consumer.stop()  # never started: stopping it only closes its client


async def test_the_admin_client_gets_the_connections_options() -> None:
    admin = kafka_admin(SASL)
    assert admin._client._sasl_mechanism == "SCRAM-SHA-512"
    assert admin._client._sasl_plain_username == "invalidator"


def test_the_publishers_broker_is_idempotent_with_acks_all_and_the_connections_options() -> None:
    broker = idempotent_broker(SASL, client_id="orders-service")
    # What FastStream hands to the aiokafka producer it builds on connecting.
    options = broker._connection_kwargs
    assert options["acks"] == "all" and options["enable_idempotence"] is True
    assert options["max_request_size"] == DEFAULT_MAX_REQUEST_BYTES
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_password"] == "s3cret"
    assert broker.config.broker_config.allow_auto_create_topics is False
