"""`outbox debezium-config`: the connector settings that make Debezium's records the relay's
(header names and order, key, value, topic), and never a password (no service)."""

from __future__ import annotations

import json

import pytest

from contracts import TlsSettings
from contracts.events import CONTENT_TYPE_JSON, HEADER_CONTENT_TYPE
from contracts.example_orders import OrderStatusChanged
from producers.outbox.cli import main
from producers.outbox.debezium import DebeziumSettings, as_properties, connector_config
from producers.publisher import EventToPublish, envelope_and_topic

URL = "postgresql+asyncpg://outbox_cdc@db.internal:6432/orders"


def test_the_headers_are_placed_in_the_relays_order() -> None:
    envelope, _ = envelope_and_topic(
        EventToPublish(
            OrderStatusChanged(
                order_id="o-1", company_id="c-1", old_status="placed", new_status="paid"
            ),
            tenant="acme",
            aggregate_version=1,
        ),
        source="orders-api",
    )
    config = connector_config(DebeziumSettings(database_url=URL))
    placed = [
        entry.split(":header:")[1]
        for entry in config["transforms.outbox.table.fields.additional.placement"].split(",")
    ]
    # InsertHeader runs after the router: content-type comes last, as in the envelope's headers.
    assert [*placed, config["transforms.contenttype.header"]] == list(envelope.headers())
    assert config["transforms.contenttype.value.literal"] == CONTENT_TYPE_JSON
    assert list(envelope.headers())[-1] == HEADER_CONTENT_TYPE
    assert config["transforms.dropid.headers"] == "id"
    assert config["extended.headers.enabled"] == "false"


def test_the_database_and_the_routing_come_from_the_settings() -> None:
    config = connector_config(
        DebeziumSettings(database_url=URL, slot_name="orders_slot", route_topic_prefix="dbz.")
    )
    assert (config["database.hostname"], config["database.port"]) == ("db.internal", "6432")
    assert (config["database.user"], config["database.dbname"]) == ("outbox_cdc", "orders")
    assert config["slot.name"] == config["publication.name"] == "orders_slot"
    assert config["transforms.outbox.route.topic.replacement"] == "dbz.${routedByValue}"
    assert DebeziumSettings(database_url=URL).heartbeat_topic == "__debezium-heartbeat.outboxdb"
    assert "database.password" not in config


def test_the_password_is_a_reference_to_a_file_on_the_worker() -> None:
    config = connector_config(
        DebeziumSettings(database_url=URL, password_file="/etc/connect/outbox.properties")
    )
    assert config["database.password"] == (
        "${file:/etc/connect/outbox.properties:database.password}"
    )
    assert "database.password=${file:/etc/connect/outbox.properties:database.password}\n" in (
        as_properties(config)
    )


def test_the_command_prints_json_and_never_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OUTBOX_DATABASE_URL", URL)
    monkeypatch.setenv("OUTBOX_DATABASE_PASSWORD", "s3cret-pw")
    assert main(["debezium-config", "--slot", "s1"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["slot.name"] == "s1"
    assert "s3cret-pw" not in out + err
    assert "--password-file" in err


@pytest.mark.parametrize(
    ("url", "fault"),
    [
        ("postgresql://cdc:s3cret-pw@db/orders", "leave the password out"),
        ("sqlite+aiosqlite:///outbox.db", "Debezium reads PostgreSQL"),
    ],
)
def test_a_url_it_cannot_use_is_refused_without_echoing_it(
    url: str, fault: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["debezium-config", "--database-url", url]) == 2
    err = capsys.readouterr().err
    assert fault in err and "s3cret-pw" not in err and url not in err


@pytest.mark.parametrize(("check_hostname", "mode"), [(True, "verify-full"), (False, "verify-ca")])
def test_tls_verifies_the_servers_certificate_and_its_name_as_the_relay_does(
    check_hostname: bool, mode: str
) -> None:
    tls = TlsSettings(ca_file="/etc/connect/pg-ca.pem", check_hostname=check_hostname)
    config = connector_config(DebeziumSettings(database_url=URL, database_tls=tls))
    assert config["database.sslmode"] == mode
    assert config["database.sslrootcert"] == "/etc/connect/pg-ca.pem"
    assert "database.sslcert" not in config and "database.sslkey" not in config


CLIENT_TLS = TlsSettings(
    ca_file="/etc/connect/pg-ca.pem",
    cert_file="/etc/connect/client.pem",
    key_file="/etc/connect/client-key.pem",
)
"""The relay's TLS with a client certificate and its key, both PEM."""


def test_a_client_certificate_is_rendered_with_its_der_key() -> None:
    config = connector_config(
        DebeziumSettings(
            database_url=URL, database_tls=CLIENT_TLS, client_key_file="/etc/connect/client.pk8"
        )
    )
    assert config["database.sslcert"] == "/etc/connect/client.pem"
    assert config["database.sslkey"] == "/etc/connect/client.pk8"


@pytest.mark.parametrize(
    ("tls", "client_key_file", "fault"),
    [
        (CLIENT_TLS, None, "reads a PEM key as RSA"),
        (CLIENT_TLS, "/etc/connect/client-key.pem", "name the PKCS#8 DER key otherwise"),
        (CLIENT_TLS, "/etc/connect/client.p12", "name the PKCS#8 DER key otherwise"),
        (CLIENT_TLS, "client.pk8", "must be absolute"),
        (TlsSettings(ca_file="/ca.pem"), "/etc/connect/client.pk8", "give the certificate too"),
        (None, "/etc/connect/client.pk8", "give the certificate too"),
    ],
)
def test_a_client_key_pgjdbc_cannot_read_is_refused(
    tls: TlsSettings | None, client_key_file: str | None, fault: str
) -> None:
    with pytest.raises(ValueError, match=fault):
        DebeziumSettings(database_url=URL, database_tls=tls, client_key_file=client_key_file)


def test_the_command_refuses_the_relays_pem_key_naming_the_setting_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OUTBOX_DATABASE_URL", URL)
    monkeypatch.setenv("OUTBOX_DATABASE_TLS__CA_FILE", "/etc/outbox/pg-ca.pem")
    monkeypatch.setenv("OUTBOX_DATABASE_TLS__CERT_FILE", "/etc/outbox/client.pem")
    monkeypatch.setenv("OUTBOX_DATABASE_TLS__KEY_FILE", "/etc/outbox/client-key.pem")
    assert main(["debezium-config"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    for named in (
        "OUTBOX_DATABASE_TLS__KEY_FILE",
        "openssl pkcs8 -topk8 -nocrypt -outform DER -in client-key.pem -out client-key.pk8",
        "--client-key-file",
    ):
        assert named in err, err
    assert main(["debezium-config", "--client-key-file", "/etc/outbox/client-key.pk8"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["database.sslcert"], config["database.sslkey"]) == (
        "/etc/outbox/client.pem",
        "/etc/outbox/client-key.pk8",
    )


def test_plaintext_is_explicit() -> None:
    assert connector_config(DebeziumSettings(database_url=URL))["database.sslmode"] == "disable"


@pytest.mark.parametrize(
    ("tls", "fault"),
    [
        (TlsSettings(), "give ca_file"),
        (TlsSettings(ca_file="certs/ca.pem"), "must be absolute"),
        (TlsSettings(ca_file="/ca.pem", key_file="client-key.pem"), "must be absolute"),
    ],
)
def test_tls_files_the_worker_cannot_use_are_refused(tls: TlsSettings, fault: str) -> None:
    with pytest.raises(ValueError, match=fault):
        DebeziumSettings(database_url=URL, database_tls=tls)


def test_the_command_renders_the_relays_tls_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OUTBOX_DATABASE_URL", URL)
    monkeypatch.setenv("OUTBOX_DATABASE_TLS__CA_FILE", "/etc/outbox/pg-ca.pem")
    monkeypatch.setenv("OUTBOX_DATABASE_TLS__CHECK_HOSTNAME", "false")
    assert main(["debezium-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["database.sslmode"], config["database.sslrootcert"]) == (
        "verify-ca",
        "/etc/outbox/pg-ca.pem",
    )
