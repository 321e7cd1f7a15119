"""Integration fixtures: the real broker, both regions' Redis and the outbox's databases,
invalidators per test."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from contracts.example_orders import CATALOGUE
from contracts.topics import DEAD_LETTER
from invalidator import Invalidator, InvalidatorSettings
from invalidator.cli import main
from producers import CacheClient, EventPublisher, RedisClient, connect_redis
from tests.certificates import Certificates, make_certificates
from tests.integration.cli import Cli
from tests.integration.databases import DATABASES, scratch_postgres_database, sqlite_url
from tests.integration.debezium import ConnectWorker, connect_url
from tests.integration.invalidators import REGIONS, running_invalidators
from tests.integration.mirrored import MirroredStack, mirrored_stack_endpoints
from tests.integration.secure_profile import SecureProfile, cache_clients, secure_profile
from tests.integration.stack import ensure_test_stack
from tests.integration.tls_kafka import (
    EXPIRED_LISTENER,
    ROTATING_LISTENER,
    WRONG_HOST_LISTENER,
    ScramTlsKafkaServer,
)
from tests.integration.tls_redis import TlsRedisServer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.nodeid:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack_env() -> Iterator[dict[str, str]]:
    """The endpoints (starts the local stack or containers when one is not given, see
    `ensure_test_stack`; fails if it cannot)."""
    with ensure_test_stack() as endpoints:
        yield endpoints


@pytest.fixture
def recorded_spans() -> Iterator[InMemorySpanExporter]:
    """The OpenTelemetry spans that end during the test, kept in memory. The global tracer
    provider becomes an SDK one the first time (it can be set once per process)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    yield exporter
    processor.shutdown()  # a provider cannot drop a processor: this one exports nothing more


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A CA of this test run and its certificates (good and bad ones), made with openssl."""
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(scope="session")
async def tls_redis(
    certificates: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TlsRedisServer]:
    """A redis-server of this run with no plaintext port, presenting the CA's good server
    certificate, with the least-privilege users of deploy/redis-acl.conf."""
    server = TlsRedisServer(
        tmp_path_factory.mktemp("tls-redis"), ca=certificates.ca, server=certificates.server
    )
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def tls_kafka(
    certificates: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ScramTlsKafkaServer]:
    """A broker of this run whose client listeners are all SASL_SSL (SCRAM-SHA-512), with the
    catalogue's topics and the dead-letter topic. `SASL_SSL` presents the CA's good server
    certificate; `EXPIRED` and `WRONG_HOST` the bad ones a client must refuse; `ROTATING`, the
    inter-broker listener, the good one until the rotation test swaps it for the second CA's."""
    server = ScramTlsKafkaServer(
        tmp_path_factory.mktemp("tls-kafka"),
        ca=certificates.ca,
        server=certificates.server,
        other_listeners={
            EXPIRED_LISTENER: certificates.expired,
            WRONG_HOST_LISTENER: certificates.wrong_host,
            ROTATING_LISTENER: certificates.server,
        },
        inter_broker_listener=ROTATING_LISTENER,
    )
    await server.start(topics={topic: 3 for topic in [*CATALOGUE.topics(), DEAD_LETTER]})
    yield server
    await server.stop()


@pytest.fixture(scope="session")
def mirrored_stack(stack_env: dict[str, str]) -> MirroredStack:
    """The mirrored topology: a cluster per region, MirrorMaker 2 and the link between them
    (`stack.sh up --mirrored`, which starts what is down; fails when it cannot)."""
    return MirroredStack.from_endpoints(mirrored_stack_endpoints())


@pytest.fixture(scope="session")
def secure() -> SecureProfile:
    """The stack's secure profile, one for the session (brought up by stack.sh unless
    INVALIDATOR_TEST_SECURE_ENV names its settings; fails if it cannot be had)."""
    return secure_profile()


@pytest.fixture
async def cache_redis(secure: SecureProfile) -> AsyncIterator[dict[str, RedisClient]]:
    """`cache_clients` of both regions on the secure profile."""
    async with cache_clients(secure, REGIONS) as clients:
        yield clients


@pytest.fixture(params=DATABASES)
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, stack_env: dict[str, str]
) -> AsyncIterator[str]:
    """The SQLAlchemy async URL of an empty database of this test alone; a test that takes it
    runs once per database (ids `[sqlite]` and `[postgresql]`).

    sqlite: `sqlite+aiosqlite:///<tmp_path>/outbox.db`, a file of this test.
    postgresql: `postgresql+asyncpg://...`, a database `outbox_test_<random>` created on the
        server of `OUTBOX_DATABASE_URL` (the local stack's unless given) and dropped after the
        test, whatever sessions are still open on it.
    """
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "outbox.db")
        return
    async with scratch_postgres_database(stack_env["OUTBOX_DATABASE_URL"]) as url:
        yield url


@pytest.fixture
async def postgres_url(stack_env: dict[str, str]) -> AsyncIterator[str]:
    """A database `outbox_test_<random>` of this test alone on the stack's PostgreSQL (as
    `database_url[postgresql]`), for what only PostgreSQL does (Debezium)."""
    async with scratch_postgres_database(stack_env["OUTBOX_DATABASE_URL"]) as url:
        yield url


@pytest.fixture(scope="session")
def debezium_worker(stack_env: dict[str, str]) -> ConnectWorker:
    """The Kafka Connect worker with Debezium's PostgreSQL connector: `DEBEZIUM_CONNECT_URL`, else
    the local stack's (`stack.sh up --debezium` starts it; the test fails when it cannot)."""
    return ConnectWorker(connect_url())


@pytest.fixture
def settings(stack_env: dict[str, str]) -> InvalidatorSettings:
    """Settings from the environment, with consumer groups of this test alone."""
    return InvalidatorSettings(group_prefix=f"test-{uuid.uuid4().hex[:10]}", stats_interval_s=3600)


@pytest.fixture
async def redis_clients(settings: InvalidatorSettings) -> AsyncIterator[dict[str, RedisClient]]:
    """One client per region (the first target of each)."""
    clients = {region: connect_redis(settings.targets(region)[0]) for region in REGIONS}
    yield clients
    for client in clients.values():
        await client.aclose()


@pytest.fixture
def caches(redis_clients: dict[str, RedisClient]) -> dict[str, CacheClient]:
    """A CacheClient per region, as a service in that region would have."""
    return {region: CacheClient(client) for region, client in redis_clients.items()}


@pytest.fixture
async def publisher(settings: InvalidatorSettings) -> AsyncIterator[EventPublisher]:
    """An EventPublisher on the real broker."""
    async with EventPublisher(settings.kafka, source="orders-api-test") as started:
        yield started


@pytest.fixture
async def invalidators(settings: InvalidatorSettings) -> AsyncIterator[dict[str, Invalidator]]:
    """Both regions' invalidators on the example catalogue."""
    async with running_invalidators(settings, CATALOGUE) as running:
        yield running


@pytest.fixture
def cli(
    settings: InvalidatorSettings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Cli:
    """Run `invalidator <args> --json` as an operator would, with this test's groups."""
    monkeypatch.setenv("INVALIDATOR_GROUP_PREFIX", settings.group_prefix)

    async def run(*args: str) -> tuple[int, dict[str, Any]]:
        capsys.readouterr()
        status = await asyncio.to_thread(main, [*args, "--json"])
        out = capsys.readouterr().out
        return status, (json.loads(out) if out.strip() else {})

    return run
