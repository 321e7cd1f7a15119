"""End to end over SASL_SSL and TLS: EventPublisher publishes to a broker whose client listeners
are all SASL_SSL (SCRAM-SHA-512), the invalidator consumes there, purges a Redis that serves TLS
only (the cache client's next read is a miss) and dead-letters a malformed record there; the
operator commands work on the same servers; the broker's certificate rotates to a new CA while
both go on."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.ext.asyncio import create_async_engine

from bench.settings_env import kafka_environment, regions_environment
from contracts import ConnectionSecurityError, KafkaConnection, TlsSettings
from contracts.connection_checks import check_kafka
from contracts.example_orders import CATALOGUE, COMPANY_ORDERS, OrderCreated
from contracts.kafka_clients import kafka_consumer
from contracts.topics import DEAD_LETTER, ORDERS
from invalidator import InvalidatorSettings
from invalidator.cli import main
from invalidator.operators import EXIT_OK, end_offsets, start_at_log_end
from invalidator.tracing import SPAN_NAME
from producers import CacheClient, EventPublisher, Fetched, Source, connect_redis
from producers.outbox import OutboxRelay, add_event, create_outbox_table
from tests.certificates import Certificates
from tests.faults.accounting import settled
from tests.faults.workload import Published, publish_until_acknowledged
from tests.integration.databases import sqlite_url
from tests.integration.endpoints import http_get
from tests.integration.invalidators import running_invalidators
from tests.integration.tls_kafka import ROTATING_LISTENER, ScramTlsKafkaServer
from tests.integration.tls_redis import TlsRedisServer
from tests.waiting import wait_until


def _secrets(
    kafka: ScramTlsKafkaServer, redis: TlsRedisServer, certificates: Certificates
) -> list[str]:
    """Every password of both servers, and a line of each private key's text."""
    keys = [pair.key for pair in (certificates.server, certificates.client)]
    return [
        *kafka.passwords.values(),
        *redis.passwords.values(),
        *(key.read_text().splitlines()[1] for key in keys),
    ]


async def _dead_letter(kafka: KafkaConnection) -> ConsumerRecord[bytes, bytes]:
    """The one record of the dead-letter topic."""
    async with kafka_consumer(kafka, auto_offset_reset="earliest") as consumer:
        consumer.subscribe([DEAD_LETTER])  # no group: assigned every partition
        records: list[ConsumerRecord[bytes, bytes]] = []

        async def read() -> bool:
            batches = await consumer.getmany(timeout_ms=200)
            records.extend(record for batch in batches.values() for record in batch)
            return bool(records)

        await wait_until(read, within=30, what="the dead letter")
    return records[0]


async def test_publish_purge_and_dead_letter_over_sasl_ssl_and_tls(
    tls_kafka: ScramTlsKafkaServer,
    tls_redis: TlsRedisServer,
    certificates: Certificates,
    caplog: pytest.LogCaptureFixture,
    recorded_spans: InMemorySpanExporter,
) -> None:
    """... and no password or private key shows in the logs (every level), the dead letter, the
    invalidator's /metrics or the run's OpenTelemetry spans."""
    caplog.set_level(logging.DEBUG)
    tls = TlsSettings(ca_file=str(certificates.ca))
    settings = InvalidatorSettings(
        kafka=tls_kafka.connection("invalidator", tls=tls),
        regions={"eu": [tls_redis.target("invalidator", tls=tls)]},
        group_prefix=f"tls-{uuid.uuid4().hex[:10]}",
        stats_interval_s=3600,
        metrics_port=0,
    )
    company = f"c-{uuid.uuid4().hex[:12]}"
    page = COMPANY_ORDERS.bind(company_id=company)
    cache_redis = connect_redis(tls_redis.target("cache", tls=tls))
    cache = CacheClient(cache_redis)
    loads = 0

    async def load() -> bytes:
        nonlocal loads
        loads += 1
        return f"orders-{loads}".encode()

    async def purged_and_dead_lettered() -> bool:
        dead_lettered = running["eu"].stats.dead_lettered == 1
        return dead_lettered and not (await cache.read(page, "page:1")).hit

    try:
        assert await cache.fetch(page, "page:1", load) == Fetched(b"orders-1", Source.LOADED)
        async with (
            EventPublisher(tls_kafka.connection("publisher", tls=tls), source="orders-api") as pub,
            running_invalidators(settings, CATALOGUE, regions=("eu",)) as running,
        ):
            assert await cache.fetch(page, "page:1", load) == Fetched(b"orders-1", Source.HIT)
            with trace.get_tracer("orders-api").start_as_current_span("orders.write"):
                await pub.publish(
                    OrderCreated(order_id=f"o-{company}", company_id=company, total_cents=1),
                    tenant="acme",
                    aggregate_version=1,
                )
            await pub.broker.publish(b"not an event", topic=ORDERS, key=b"k")
            await wait_until(
                purged_and_dead_lettered, within=30, what="the purge and the dead letter over TLS"
            )
            stats = running["eu"].stats
            assert (stats.purge_retries, stats.purge_errors, stats.dead_letter_errors) == (0, 0, 0)
            dead_letters = await end_offsets(tls_kafka.connection("admin", tls=tls), [DEAD_LETTER])
            assert sum(dead_letters.values()) == 1
            status, metrics = await http_get(running["eu"].metrics_address, "/metrics")
            assert status == 200
            assert "invalidator_events_consumed_total" in metrics
        spans = recorded_spans.get_finished_spans()
        assert SPAN_NAME in {span.name for span in spans}
        assert await cache.fetch(page, "page:1", load) == Fetched(b"orders-2", Source.LOADED)
        dead_letter = await _dead_letter(tls_kafka.connection("admin", tls=tls))
        headers = b" ".join(name.encode() + b"=" + value for name, value in dead_letter.headers)
        seen = [
            caplog.text.encode(),
            headers,
            dead_letter.value or b"",
            metrics.encode(),
            *(span.to_json().encode() for span in spans),
        ]
        secrets = _secrets(tls_kafka, tls_redis, certificates)
        leaked = [i for i, secret in enumerate(secrets) for text in seen if secret.encode() in text]
        assert leaked == [], "a password or a private key is in a log, a record, metrics or a span"
    finally:
        await cache_redis.aclose()


@pytest.mark.parametrize(
    "command",
    [
        ("topics", "check"),
        ("offsets", "show", "--region", "eu"),
        ("purge", "--region", "eu", "company_orders", "company_id=c-by-hand", "--yes"),
        ("offsets", "rewind", "--region", "eu", "--to-earliest"),
        ("replay", "--region", "eu", "--from", "10m", "--dry-run"),
        ("dead-letters", "show"),
        ("dead-letters", "redrive", "--from", "10m"),
        ("topics", "create"),
        ("watch", "--since", "10m"),
    ],
    ids=" ".join,
)
async def test_operator_commands_work_over_sasl_ssl_and_tls(
    command: tuple[str, ...],
    tls_kafka: ScramTlsKafkaServer,
    tls_redis: TlsRedisServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tls = TlsSettings(ca_file=str(tls_redis.ca))
    kafka = tls_kafka.connection("invalidator", tls=tls)
    prefix = f"tls-{uuid.uuid4().hex[:10]}"
    redis_user = "watchdog" if command[0] == "watch" else "invalidator"
    environment = {
        **kafka_environment(kafka),
        # The watchdog reads generations as a user of its own (the invalidator's may not).
        **regions_environment({"eu": [tls_redis.target(redis_user, tls=tls)]}),
        "INVALIDATOR_GROUP_PREFIX": prefix,
    }
    if command[:2] == ("offsets", "rewind"):  # a group that committed, to rewind
        await start_at_log_end(kafka, f"{prefix}.eu", [ORDERS])
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    status = await asyncio.to_thread(main, [*command, "--json"])
    out, err = capsys.readouterr()
    assert status == EXIT_OK, err
    assert json.loads(out)


async def test_the_outbox_relay_publishes_over_sasl_ssl(
    tls_kafka: ScramTlsKafkaServer, certificates: Certificates, tmp_path: Path
) -> None:
    """A row committed to the outbox (SQLite here) is published to the SASL_SSL-only broker."""
    tls = TlsSettings(ca_file=str(certificates.ca))
    as_publisher = tls_kafka.connection("publisher", tls=tls)
    engine = create_async_engine(sqlite_url(tmp_path / "outbox.db"))
    await create_outbox_table(engine)
    before = sum((await end_offsets(as_publisher, [ORDERS])).values())
    relay = OutboxRelay(engine, as_publisher)
    try:
        async with engine.begin() as connection:
            await add_event(
                connection,
                OrderCreated(order_id="o-outbox-tls", company_id="c-outbox-tls", total_cents=1),
                source="orders-api",
                tenant="acme",
                aggregate_version=1,
            )
        await relay.start()
        assert await relay.relay_once() == 1
    finally:
        await relay.stop_producer()
        await engine.dispose()
    assert sum((await end_offsets(as_publisher, [ORDERS])).values()) == before + 1


def _der(pem: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.read_text())


async def test_the_broker_certificate_rotates_to_a_new_ca_without_a_restart(
    tls_kafka: ScramTlsKafkaServer, tls_redis: TlsRedisServer, certificates: Certificates
) -> None:
    """The rotation deployment.md describes, on the broker's inter-broker listener, by dynamic
    broker configs (what `kafka-configs --alter` sets) and no restart: clients trust both CAs
    first; the broker refuses the new certificate while its own truststore lacks the new CA,
    takes the CA bundle as its truststore, then the new certificate. A publisher and an
    invalidator that trust the bundle go on through it (every event id purged, no publish
    retried, no purge failed); a new connection gets the new certificate; a client that trusts
    only the old CA is refused, naming the unknown CA."""
    bundle = TlsSettings(ca_file=str(certificates.ca_bundle()))
    old_ca = TlsSettings(ca_file=str(certificates.ca))
    old_ca_only = tls_kafka.connection("invalidator", tls=old_ca, listener=ROTATING_LISTENER)
    settings = InvalidatorSettings(
        kafka=tls_kafka.connection("invalidator", tls=bundle, listener=ROTATING_LISTENER),
        regions={"eu": [tls_redis.target("invalidator", tls=old_ca)]},
        group_prefix=f"tls-rotation-{uuid.uuid4().hex[:10]}",
        stats_interval_s=3600,
    )
    as_publisher = tls_kafka.connection("publisher", tls=bundle, listener=ROTATING_LISTENER)
    published = Published()
    stop_publishing = asyncio.Event()

    async def publish_stream(publisher: EventPublisher) -> None:
        while not stop_publishing.is_set():
            await publish_until_acknowledged(publisher, published)

    def acknowledged(count: int) -> Callable[[], Awaitable[bool]]:
        async def reached() -> bool:
            return len(published.namespaces) >= count

        return reached

    async def presents_the_new_certificate() -> bool:
        presented = await tls_kafka.presented_certificate(ROTATING_LISTENER)
        return presented == _der(certificates.rotated.cert)

    await check_kafka(old_ca_only)
    assert await tls_kafka.presented_certificate(ROTATING_LISTENER) == _der(
        certificates.server.cert
    )
    redis = tls_redis.admin()
    try:
        async with (
            EventPublisher(as_publisher, source="orders-api") as publisher,
            running_invalidators(settings, CATALOGUE, regions=("eu",)) as running,
        ):
            publishing = asyncio.create_task(publish_stream(publisher))
            try:
                await wait_until(acknowledged(20), within=30, what="events before the rotation")
                new_certificate = {"ssl.keystore.location": str(certificates.rotated.bundle())}
                with pytest.raises(RuntimeError, match="Validation of dynamic config update"):
                    await tls_kafka.set_listener_configs(ROTATING_LISTENER, new_certificate)
                new_truststore = {"ssl.truststore.location": str(certificates.ca_bundle())}
                await tls_kafka.set_listener_configs(ROTATING_LISTENER, new_truststore)
                await tls_kafka.set_listener_configs(
                    ROTATING_LISTENER, {**new_truststore, **new_certificate}
                )
                await wait_until(
                    presents_the_new_certificate,
                    within=30,
                    what="the broker's new certificate",
                    interval=0.2,
                )
                rotated_at = len(published.namespaces)
                await wait_until(
                    acknowledged(rotated_at + 20), within=30, what="events after the rotation"
                )
            finally:
                stop_publishing.set()
                await asyncio.wait_for(publishing, timeout=30)
            async with EventPublisher(as_publisher, source="orders-api") as on_new_connections:
                await asyncio.wait_for(
                    publish_until_acknowledged(on_new_connections, published), timeout=30
                )
            purging, _ = await settled(
                published.namespaces, {"eu": redis}, since=time.monotonic(), within=60
            )
            purging.assert_nothing_lost()
            stats = running["eu"].stats
            assert (stats.purge_retries, stats.purge_errors, stats.dead_lettered) == (0, 0, 0)
    finally:
        await redis.aclose()
    assert published.publish_retries == 0
    with pytest.raises(ConnectionSecurityError, match="unknown CA"):
        await check_kafka(old_ca_only)
