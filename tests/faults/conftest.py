"""Fault tests use the integration fixtures (real broker, real Redis), and a broker of their own
that enforces Kafka ACLs."""

from __future__ import annotations

import asyncio
import shlex
import uuid
from collections.abc import AsyncIterator

import pytest

from bench.stack import REPO
from contracts.example_orders import CATALOGUE
from contracts.topics import DEAD_LETTER
from tests.faults.kafka_server import SaslKafkaServer
from tests.integration.conftest import (  # noqa: F401  (fixtures)
    caches,
    cli,
    database_url,
    debezium_worker,
    invalidators,
    mirrored_stack,
    postgres_url,
    publisher,
    redis_clients,
    settings,
    stack_env,
)

KAFKA_ACL_FILE = REPO / "deploy" / "kafka-acls.conf"
KAFKA_USERS = {"invalidator": "inv-" + uuid.uuid4().hex, "publisher": "pub-" + uuid.uuid4().hex}


def kafka_acl_calls() -> list[list[str]]:
    """The kafka-acls.sh arguments of deploy/kafka-acls.conf, one list per call."""
    lines = KAFKA_ACL_FILE.read_text().splitlines()
    return [shlex.split(line) for line in lines if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="session")
async def acl_kafka(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SaslKafkaServer]:
    """A broker enforcing ACLs, with the users and ACLs of deploy/kafka-acls.conf and the
    catalogue's topics and the dead-letter topic; one for the session (a start costs ~14 s), so
    a test that changes its ACLs or topics uses names of its own, and counts records as the
    difference its own run made."""
    server = SaslKafkaServer(tmp_path_factory.mktemp("acl-kafka"), users=KAFKA_USERS)
    try:
        await server.start(topics={topic: 3 for topic in [*CATALOGUE.topics(), DEAD_LETTER]})
        bootstrap = ["--bootstrap-server", f"127.0.0.1:{server.port}"]
        admin_config = ["--command-config", str(server.admin_properties())]
        acls = "org.apache.kafka.tools.AclCommand"
        await asyncio.gather(
            *(server.run_tool(acls, *bootstrap, *admin_config, *call) for call in kafka_acl_calls())
        )
        yield server
    finally:
        await server.stop()
