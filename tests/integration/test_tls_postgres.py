"""The outbox over TLS to PostgreSQL, against a server that takes TLS connections and password
logins only: the relay publishes a row written there, and `outbox` refuses to start, with one
line naming the endpoint and the cause, exit status 2 and no traceback, when the server's
certificate does not verify, the password is wrong, or the client does not ask for TLS. Neither
a password nor a private key appears in what it prints."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from contracts import TlsSettings
from contracts.events import HEADER_EVENT_ID
from invalidator import InvalidatorSettings
from invalidator.operators import end_offsets
from producers.outbox import OutboxRelay, RelaySettings, create_outbox_table
from producers.outbox.cli import EXIT_INPUT, EXIT_OK, engine_of
from tests.certificates import Certificates, make_certificates
from tests.integration.kafka_tools import records_to_end
from tests.integration.tls_postgres import TlsPostgresServer
from tests.relay_fakes import TOPIC, write_row

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("postgres-ca"))


@pytest.fixture(scope="module")
async def postgres(certificates: Certificates) -> AsyncIterator[TlsPostgresServer]:
    server = TlsPostgresServer(ca=certificates.ca, server=certificates.server)
    try:
        await server.start()
        yield server
    finally:
        server.stop()


def _environment(
    server: TlsPostgresServer, *, ca: Path | None, password: SecretStr
) -> dict[str, str]:
    env = {
        "OUTBOX_DATABASE_URL": server.url(),
        "OUTBOX_DATABASE_PASSWORD": password.get_secret_value(),
    }
    if ca is not None:
        env["OUTBOX_DATABASE_TLS__CA_FILE"] = str(ca)
    return env


def _outbox(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOX_")}
    return subprocess.run(
        [sys.executable, "-m", "producers.outbox.cli", *args],
        env={**kept, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_the_relay_publishes_a_row_written_over_tls(
    postgres: TlsPostgresServer, certificates: Certificates, settings: InvalidatorSettings
) -> None:
    init = _outbox(
        "init", env=_environment(postgres, ca=certificates.ca, password=postgres.password)
    )
    assert (init.returncode, init.stdout.strip()) == (EXIT_OK, "outbox table ready"), init.stderr

    relay_settings = RelaySettings(
        database_url=postgres.url(),
        database_password=postgres.password,
        database_tls=TlsSettings(ca_file=str(certificates.ca)),
        kafka=settings.kafka,
    )
    engine = engine_of(relay_settings)
    try:
        await create_outbox_table(engine)  # already there: idempotent
        event_id = await write_row(engine, "o-tls", 1)
        start = await end_offsets(settings.kafka, [TOPIC])
        relay = OutboxRelay(engine, settings.kafka)
        await relay.start()
        try:
            assert await relay.relay_once() == 1
        finally:
            await relay.stop_producer()
        async with engine.connect() as connection:
            cipher = await connection.exec_driver_sql(
                "SELECT ssl, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            )
            assert cipher.one()[0] is True, "the relay's connection is not encrypted"
    finally:
        await engine.dispose()
    published = await records_to_end(settings.kafka, start)
    ids = [dict(record.headers or ())[HEADER_EVENT_ID].decode() for record in published]
    assert event_id in ids


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown-ca", "its TLS certificate does not verify"),
        ("wrong-password", "refused the login of user 'relay'"),
        ("plaintext", "it takes TLS connections only: set OUTBOX_DATABASE_TLS__CA_FILE"),
    ],
)
async def test_outbox_refuses_to_start_naming_the_endpoint_and_the_cause(
    postgres: TlsPostgresServer, certificates: Certificates, case: str, expected: str
) -> None:
    ca: Path | None = certificates.ca
    password = postgres.password
    if case == "unknown-ca":
        ca = certificates.unknown_ca
    elif case == "wrong-password":
        password = SecretStr("wrong-" + postgres.password.get_secret_value()[::-1])
    else:
        ca = None
    for command in ("init", "relay"):
        done = _outbox(command, env=_environment(postgres, ca=ca, password=password))
        lines = done.stderr.strip().splitlines()
        assert done.returncode == EXIT_INPUT, f"{command}: {done.returncode}: {done.stderr}"
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert lines[0].startswith(f"outbox: the database at 127.0.0.1:{postgres.port} ")
        assert expected in lines[0], lines[0]
        for secret in (
            password.get_secret_value(),
            postgres.password.get_secret_value(),
            certificates.server.key.read_text().splitlines()[1],
        ):
            assert secret not in done.stderr + done.stdout, f"{command} printed a secret"


def test_tls_to_sqlite_is_refused_in_the_settings() -> None:
    with pytest.raises(ValueError, match="OUTBOX_DATABASE_TLS is for PostgreSQL"):
        RelaySettings(
            database_url="sqlite+aiosqlite:///outbox.db", database_tls=TlsSettings(ca_file="ca")
        )
