"""Debezium as the outbox relay over TLS end to end: a Kafka Connect worker whose clients speak
SASL_SSL (SCRAM-SHA-512, PEM truststore) to the session's TLS broker runs the connector that
`outbox debezium-config` renders from the relay's settings against a PostgreSQL that takes TLS
connections only, logging in by password, or by a client certificate alone (pg_hba's `cert`, for
a user of its own; the key given to Debezium as PKCS#8 DER). Every event written with
`add_event` arrives with the relay's headers; neither password nor a private key shows in the
worker's log or in the config its REST API returns. A connector that does not trust the server's
CA, asks for no TLS, or has no client certificate the server trusts where one is required, is
refused, its cause named.
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
from typing import Any, Literal

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
from tests.integration.tls_postgres import CERTIFICATE_USER, TlsPostgresServer
from tests.waiting import wait_until

SOURCE = "orders-api-debezium-tls-test"
CONNECT_USER = "publisher"
"""The SCRAM user the Connect worker logs in as (a publisher of events)."""
EVENTS = 8
STREAMING_WITHIN_S = 60.0
Login = Literal["password", "client-certificate"]
"""How the connector logs in to PostgreSQL: as the relay's user with its password, or as
CERTIFICATE_USER with the client certificate alone."""
CERTIFICATE_SUBJECT = "/CN=client"
"""The subject of the test CA's client certificate, as pg_stat_ssl shows it."""


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
    """The TLS PostgreSQL (wal_level=logical) with the outbox table, for this module; its
    CERTIFICATE_USER logs in by a client certificate of the test CA."""
    postgres = TlsPostgresServer(
        ca=certificates.ca,
        server=certificates.server,
        logical_replication=True,
        client_ca=certificates.ca,
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


def _rendered_config(
    outbox: TlsOutbox, certificates: Certificates, run: str, login: Login
) -> dict[str, str]:
    """What `outbox debezium-config` prints for the relay's settings (read from OUTBOX_*): the
    relay's user and a password file, or CERTIFICATE_USER with the relay's client certificate
    (PEM) and its key converted to PKCS#8 DER for Debezium."""
    settings = outbox.relay_settings
    assert settings.database_tls is not None and settings.database_password is not None
    environment = {"OUTBOX_DATABASE_TLS__CA_FILE": str(settings.database_tls.ca_file)}
    arguments = [
        "debezium-config",
        f"--name=outbox-tls-{run}",
        f"--slot=dbz_tls_{run}",
        f"--topic-prefix=outboxtls{run}",
    ]
    if login == "password":
        environment["OUTBOX_DATABASE_URL"] = settings.database_url
        environment["OUTBOX_DATABASE_PASSWORD"] = settings.database_password.get_secret_value()
        arguments.append(f"--password-file={outbox.password_file}")
    else:
        environment["OUTBOX_DATABASE_URL"] = outbox.postgres.url(user=CERTIFICATE_USER)
        environment["OUTBOX_DATABASE_TLS__CERT_FILE"] = str(certificates.client.cert)
        environment["OUTBOX_DATABASE_TLS__KEY_FILE"] = str(certificates.client.key)
        arguments.append(f"--client-key-file={certificates.client.der_key()}")
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        for name, value in environment.items():
            patch.setenv(name, value)
        status = main(arguments)
    assert status == 0, printed.getvalue()
    config: dict[str, str] = json.loads(printed.getvalue())
    return config


@dataclass(frozen=True)
class SlotReader:
    """The walsender streaming from a slot: whether its connection is encrypted, and the subject
    of the client certificate it presented (None: none)."""

    tls: bool
    client_subject: str | None


async def _slot_reader(engine: AsyncEngine, slot: str) -> SlotReader | None:
    """The walsender streaming from `slot`, None while there is none."""
    async with engine.connect() as connection:
        row = await connection.execute(
            text(
                "SELECT s.ssl, s.client_dn FROM pg_replication_slots r"
                " JOIN pg_stat_ssl s ON s.pid = r.active_pid WHERE r.slot_name = :slot"
            ),
            {"slot": slot},
        )
        found = row.first()
    return None if found is None else SlotReader(tls=bool(found[0]), client_subject=found[1])


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


@pytest.mark.parametrize("login", ["password", "client-certificate"])
async def test_debezium_streams_the_outbox_from_tls_postgresql_to_a_sasl_ssl_broker(
    connect: ScramTlsConnectWorker,
    tls_kafka: ScramTlsKafkaServer,
    certificates: Certificates,
    outbox: TlsOutbox,
    login: Login,
) -> None:
    run = uuid.uuid4().hex[:8]
    config = _rendered_config(outbox, certificates, run, login)
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
            reader = await _slot_reader(engine, slot)
            return states == ["RUNNING"] and reader is not None and reader.tls

        await wait_until(
            streaming, within=STREAMING_WITHIN_S, what=f"{name} streaming over TLS", interval=0.2
        )
        reader = await _slot_reader(engine, slot)
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

    presented = CERTIFICATE_SUBJECT if login == "client-certificate" else None
    assert reader is not None and reader.client_subject == presented, reader
    arrived = {dict(record.headers)[HEADER_EVENT_ID].decode(): record for record in published}
    assert set(arrived) == set(written), "an event id is missing or not ours"
    for event_id, envelope in written.items():
        record = arrived[event_id]
        headers = [(header, bytes(value).decode()) for header, value in record.headers]
        assert headers == list(envelope.headers().items()), event_id
        assert record.key == envelope.partition_key(), event_id
        assert json.loads(record.value)["event_id"] == event_id
    reference = f"${{file:{outbox.password_file}:{PASSWORD_KEY}}}" if login == "password" else None
    assert json.loads(returned)[1].get(PASSWORD_KEY) == reference, "a password not by reference"
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
        for pair in (certificates.server, certificates.client, certificates.foreign_client)
        for line in pair.key.read_text().splitlines()
        if line and not line.startswith("-----")
    ]


Refusal = Literal["unknown-ca", "plaintext", "no-client-certificate", "foreign-client-certificate"]


def _refused_settings(
    case: Refusal, outbox: TlsOutbox, certificates: Certificates, run: str
) -> DebeziumSettings:
    """A connector the server must refuse: it does not trust the server's CA or asks for no TLS
    (the relay's user), or it logs in as CERTIFICATE_USER with no client certificate, or with
    one of a CA the server does not trust."""
    names = {"name": f"outbox-refused-{run}", "slot_name": f"dbz_refused_{run}"}
    if case in ("unknown-ca", "plaintext"):
        tls = TlsSettings(ca_file=str(certificates.unknown_ca)) if case == "unknown-ca" else None
        return DebeziumSettings(
            database_url=outbox.postgres.url(),
            password_file=str(outbox.password_file),
            database_tls=tls,
            **names,
        )
    if case == "no-client-certificate":
        return DebeziumSettings(
            database_url=outbox.postgres.url(user=CERTIFICATE_USER),
            database_tls=TlsSettings(ca_file=str(certificates.ca)),
            **names,
        )
    foreign = certificates.foreign_client
    return DebeziumSettings(
        database_url=outbox.postgres.url(user=CERTIFICATE_USER),
        database_tls=TlsSettings(
            ca_file=str(certificates.ca), cert_file=str(foreign.cert), key_file=str(foreign.key)
        ),
        client_key_file=str(foreign.der_key()),
        **names,
    )


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown-ca", "SSL error: PKIX path building failed"),
        ("plaintext", 'no pg_hba.conf entry for host "127.0.0.1", user "relay", database'),
        ("no-client-certificate", "connection requires a valid client certificate"),
        ("foreign-client-certificate", "connection requires a valid client certificate"),
    ],
)
async def test_a_connector_without_the_servers_ca_tls_or_a_trusted_certificate_is_refused(
    connect: ScramTlsConnectWorker,
    certificates: Certificates,
    outbox: TlsOutbox,
    case: Refusal,
    expected: str,
) -> None:
    """Debezium tests the connection when Connect validates the config: the connector is not
    created, and Connect's validation names the cause. (Connect 4.1.0 answers the PUT with
    500 and a NullPointerException of its own, not the cause: the validate endpoint has it.)"""
    config = connector_config(_refused_settings(case, outbox, certificates, uuid.uuid4().hex[:8]))
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
