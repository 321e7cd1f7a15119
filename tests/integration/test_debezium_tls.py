"""Debezium as the outbox relay over TLS end to end: a Kafka Connect worker whose clients speak
SASL_SSL (SCRAM-SHA-512, PEM truststore) to the session's TLS broker runs the connector that
`outbox debezium-config` renders from the relay's settings against a PostgreSQL that takes TLS
connections only. Every event written with `add_event` arrives with the relay's headers; neither
password nor a private key shows in the worker's log or in the config its REST API returns. A
connector that does not trust the server's CA, or asks for no TLS, is refused, its cause named.
"""

from __future__ import annotations

import contextlib
import io
import json
import urllib.error
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import KafkaConnection, TlsSettings, topics
from contracts.events import HEADER_EVENT_ID
from contracts.example_orders import OrderStatusChanged
from invalidator.operators import end_offsets
from producers.outbox import RelaySettings, add_event, create_outbox_table
from producers.outbox.cli import engine_of, main
from producers.outbox.debezium import PASSWORD_KEY, DebeziumSettings, connector_config
from tests.certificates import Certificates
from tests.integration.kafka_tools import ensure_topic, records_after
from tests.integration.tls_connect import POSTGRES_CONNECTOR, ScramTlsConnectWorker
from tests.integration.tls_kafka import ADMIN, ScramTlsKafkaServer
from tests.integration.tls_postgres import TlsPostgresServer
from tests.waiting import wait_until

SOURCE = "orders-api-debezium-tls-test"
CONNECT_USER = "publisher"
"""The SCRAM user the Connect worker logs in as (a publisher of events)."""
EVENTS = 8
STREAMING_WITHIN_S = 60.0


@pytest.fixture(scope="module")
async def connect(
    tls_kafka: ScramTlsKafkaServer,
    certificates: Certificates,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ScramTlsConnectWorker]:
    """A Connect worker with Debezium, its clients on the session broker's SASL_SSL listener."""
    worker = ScramTlsConnectWorker(
        tmp_path_factory.mktemp("tls-connect"),
        bootstrap_servers=tls_kafka.connection(
            CONNECT_USER, tls=TlsSettings(ca_file=str(certificates.ca))
        ).bootstrap_servers,
        user=CONNECT_USER,
        password=SecretStr(tls_kafka.passwords[CONNECT_USER]),
        ca=certificates.ca,
    )
    await worker.start()
    yield worker
    await worker.stop()


@dataclass(frozen=True)
class TlsOutbox:
    """The outbox's side: a TLS-only PostgreSQL from which `relay` may stream changes, the
    relay's settings for it, an engine with the outbox table made, and the password file a
    connector names (the worker's file config provider reads it)."""

    postgres: TlsPostgresServer
    relay_settings: RelaySettings
    engine: AsyncEngine
    password_file: Path


@pytest.fixture(scope="module")
async def outbox(
    certificates: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TlsOutbox]:
    """The TLS PostgreSQL (wal_level=logical) with the outbox table, for this module."""
    postgres = TlsPostgresServer(
        ca=certificates.ca, server=certificates.server, logical_replication=True
    )
    password_file = tmp_path_factory.mktemp("connect-secrets") / "outbox-database.properties"
    password_file.write_text(f"{PASSWORD_KEY}={postgres.password.get_secret_value()}\n")
    password_file.chmod(0o600)
    try:
        await postgres.start()
        relay_settings = RelaySettings(
            database_url=postgres.url(),
            database_password=postgres.password,
            database_tls=TlsSettings(ca_file=str(certificates.ca)),
        )
        engine = engine_of(relay_settings)
        try:
            await create_outbox_table(engine)
            yield TlsOutbox(postgres, relay_settings, engine, password_file)
        finally:
            await engine.dispose()
    finally:
        postgres.stop()


def _kafka(tls_kafka: ScramTlsKafkaServer, certificates: Certificates) -> KafkaConnection:
    return tls_kafka.connection(ADMIN, tls=TlsSettings(ca_file=str(certificates.ca)))


def _rendered_config(outbox: TlsOutbox, run: str) -> dict[str, str]:
    """What `outbox debezium-config` prints for the relay's settings (read from OUTBOX_*)."""
    settings = outbox.relay_settings
    assert settings.database_tls is not None and settings.database_password is not None
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setenv("OUTBOX_DATABASE_URL", settings.database_url)
        patch.setenv("OUTBOX_DATABASE_PASSWORD", settings.database_password.get_secret_value())
        patch.setenv("OUTBOX_DATABASE_TLS__CA_FILE", str(settings.database_tls.ca_file))
        status = main(
            [
                "debezium-config",
                f"--name=outbox-tls-{run}",
                f"--slot=dbz_tls_{run}",
                f"--topic-prefix=outboxtls{run}",
                f"--password-file={outbox.password_file}",
            ]
        )
    assert status == 0, printed.getvalue()
    config: dict[str, str] = json.loads(printed.getvalue())
    return config


async def _slot_streams_over_tls(engine: AsyncEngine, slot: str) -> bool:
    """Whether a walsender streams from `slot` over an encrypted connection."""
    async with engine.connect() as connection:
        row = await connection.execute(
            text(
                "SELECT s.ssl FROM pg_replication_slots r"
                " JOIN pg_stat_ssl s ON s.pid = r.active_pid WHERE r.slot_name = :slot"
            ),
            {"slot": slot},
        )
        found = row.first()
    return bool(found and found[0])


async def _drop_slot(engine: AsyncEngine, slot: str) -> None:
    async def released() -> bool:
        async with engine.connect() as connection:
            active = await connection.execute(
                text("SELECT active FROM pg_replication_slots WHERE slot_name = :slot"),
                {"slot": slot},
            )
            found = active.first()
        return found is None or not found[0]

    await wait_until(released, within=60, what=f"slot {slot} released", interval=0.2)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                " WHERE slot_name = :slot"
            ),
            {"slot": slot},
        )


async def test_debezium_streams_the_outbox_from_tls_postgresql_to_a_sasl_ssl_broker(
    connect: ScramTlsConnectWorker,
    tls_kafka: ScramTlsKafkaServer,
    certificates: Certificates,
    outbox: TlsOutbox,
) -> None:
    run = uuid.uuid4().hex[:8]
    config = _rendered_config(outbox, run)
    engine = outbox.engine
    assert config["database.sslmode"] == "verify-full"
    kafka = _kafka(tls_kafka, certificates)
    await ensure_topic(kafka, f"__debezium-heartbeat.outboxtls{run}", partitions=1)
    start = await end_offsets(kafka, [topics.ORDERS])
    name, slot = config["name"], config["slot.name"]
    await connect.rest.put_connector(config)
    try:

        async def streaming() -> bool:
            states = await connect.rest.task_states(name)  # raises with the trace if FAILED
            return states == ["RUNNING"] and await _slot_streams_over_tls(engine, slot)

        await wait_until(
            streaming, within=STREAMING_WITHIN_S, what=f"{name} streaming over TLS", interval=0.2
        )
        written = {}
        for n in range(EVENTS):
            async with engine.begin() as connection:
                envelope = await add_event(
                    connection,
                    OrderStatusChanged(
                        order_id=f"o-{run}-{n}",
                        company_id=f"c-{run}",
                        old_status="placed",
                        new_status="paid",
                    ),
                    source=SOURCE,
                    tenant="acme",
                    aggregate_version=1,
                )
            written[str(envelope.event_id)] = envelope

        def ours(record: Any) -> bool:
            return dict(record.headers).get(HEADER_EVENT_ID, b"").decode() in written

        published = await records_after(kafka, start, ours, count=EVENTS, within=60)
        returned = json.dumps(
            [
                await connect.rest.request("GET", f"/connectors/{name}"),
                await connect.rest.request("GET", f"/connectors/{name}/config"),
            ]
        )
    finally:
        await connect.rest.delete_connector(name)
        await _drop_slot(engine, slot)

    arrived = {dict(record.headers)[HEADER_EVENT_ID].decode(): record for record in published}
    assert set(arrived) == set(written), "an event id is missing or not ours"
    for event_id, envelope in written.items():
        record = arrived[event_id]
        headers = [(header, bytes(value).decode()) for header, value in record.headers]
        assert headers == list(envelope.headers().items()), event_id
        assert record.key == envelope.partition_key(), event_id
        assert json.loads(record.value)["event_id"] == event_id
    reference = f"${{file:{outbox.password_file}:{PASSWORD_KEY}}}"
    assert json.loads(returned)[1][PASSWORD_KEY] == reference, "the password is not by reference"
    worker_log = connect.log_file.read_text()
    for secret in (
        outbox.postgres.password.get_secret_value(),
        tls_kafka.passwords[CONNECT_USER],
        *_key_lines(certificates),
    ):
        assert secret not in returned, "Connect's REST API returned a secret"
        assert secret not in worker_log, f"a secret in the worker's log ({connect.log_file})"


def _key_lines(certificates: Certificates) -> list[str]:
    """The body lines of every private key the test's CA made (none may reach Connect)."""
    return [
        line
        for pair in (certificates.server, certificates.client)
        for line in pair.key.read_text().splitlines()
        if line and not line.startswith("-----")
    ]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown-ca", "SSL error: PKIX path building failed"),
        ("plaintext", 'no pg_hba.conf entry for host "127.0.0.1", user "relay", database'),
    ],
)
async def test_a_connector_that_cannot_verify_the_server_or_asks_no_tls_is_refused(
    connect: ScramTlsConnectWorker,
    certificates: Certificates,
    outbox: TlsOutbox,
    case: str,
    expected: str,
) -> None:
    """Debezium tests the connection when Connect validates the config: the connector is not
    created, and Connect's validation names the cause. (Connect 4.1.0 answers the PUT with
    500 and a NullPointerException of its own, not the cause: the validate endpoint has it.)"""
    tls = TlsSettings(ca_file=str(certificates.unknown_ca)) if case == "unknown-ca" else None
    run = uuid.uuid4().hex[:8]
    config = connector_config(
        DebeziumSettings(
            database_url=outbox.postgres.url(),
            name=f"outbox-refused-{run}",
            slot_name=f"dbz_refused_{run}",
            password_file=str(outbox.password_file),
            database_tls=tls,
        )
    )
    with pytest.raises(urllib.error.HTTPError):
        await connect.rest.put_connector(config)
    assert config["name"] not in await connect.rest.request("GET", "/connectors")
    validation = await connect.rest.request(
        "PUT", f"/connector-plugins/{POSTGRES_CONNECTOR}/config/validate", config
    )
    errors = [
        error
        for entry in validation["configs"]
        for error in (entry.get("value") or {}).get("errors", [])
    ]
    assert validation["error_count"] >= 1 and any(expected in error for error in errors), errors
