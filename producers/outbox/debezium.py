"""The Debezium connector configuration that publishes the outbox table as the relay does.

At scale the relay may be Debezium's PostgreSQL connector with its outbox event router, on
Kafka Connect: it reads the outbox rows from PostgreSQL's logical replication stream instead of
polling the table. `connector_config` renders the connector's settings so that each record is
the relay's, byte for byte: the same key, value, headers (names, values and order) and partition
(the same murmur2 partitioner on the same key). Print them with `outbox debezium-config`.

What the Connect worker needs besides (the local stack's `stack.sh up --debezium` sets it):
`plugin.path` with debezium-connector-postgres 3.6, and, for `password_file`, the file config
provider (`config.providers=file`, `config.providers.file.class=
org.apache.kafka.common.config.provider.FileConfigProvider`). Debezium never marks or deletes
outbox rows: delete old rows yourself (docs/operations.md).

TLS to PostgreSQL follows the relay's `OUTBOX_DATABASE_TLS__*` (`database_tls`): the server's
certificate is verified against its CA file, and its name too unless `check_hostname` is off;
without it the connection is plaintext, and the config says so (`database.sslmode=disable`).
A client certificate is the relay's too, but not its key: the connector's driver (pgjdbc) reads
an EC key in PEM as RSA and fails, so Debezium is given the same key as unencrypted PKCS#8 DER
(`client_key_file`), which pgjdbc reads whatever the key's type.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.engine import make_url

from contracts.connections import TlsSettings
from contracts.events import (
    CONTENT_TYPE_JSON,
    HEADER_CONTENT_TYPE,
    HEADER_EVENT_ID,
    HEADER_EVENT_TYPE,
    HEADER_SCHEMA_VERSION,
)
from producers.outbox.table import TABLE_NAME

CONNECTOR_CLASS = "io.debezium.connector.postgresql.PostgresConnector"
HEARTBEAT_TOPIC_PREFIX = "__debezium-heartbeat"
PASSWORD_KEY = "database.password"
"""The key the password file holds the database password under."""
SSL_MODE_KEY = "database.sslmode"
"""Debezium's PostgreSQL connector option for TLS (`SecureConnectionMode`), with
`database.sslrootcert`, `database.sslcert` and `database.sslkey` (files on the worker)."""
NOT_DER_KEY_SUFFIXES = (".pem", ".key", ".p12", ".pfx")
"""pgjdbc (42.7) picks its key reader by the file's name: .p12/.pfx PKCS#12, .pem/.key PEM
read as RSA unless told otherwise, any other name PKCS#8 DER (the key's type taken from the
certificate)."""
DER_KEY_COMMAND = (
    "openssl pkcs8 -topk8 -nocrypt -outform DER -in client-key.pem -out client-key.pk8"
)
"""How to turn the relay's PEM key into the PKCS#8 DER key Debezium reads."""


class DebeziumSettings(BaseModel):
    """What differs between one outbox connector and another."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    database_url: str = Field(
        description="the outbox's database, as OUTBOX_DATABASE_URL (postgresql[+asyncpg]://"
        "user@host:port/db, no password)"
    )
    name: str = Field(default="outbox", description="the connector's name on the Connect worker")
    table: str = Field(
        default=f"public.{TABLE_NAME}",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$",
        description="the outbox table, schema-qualified",
    )
    slot_name: str = Field(
        default="dbz_outbox",
        pattern=r"^[a-z0-9_]{1,63}$",
        description="the replication slot (one per connector)",
    )
    publication_name: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9_]{1,63}$",
        description="the publication of the table (default: the slot's name)",
    )
    topic_prefix: str = Field(
        default="outboxdb",
        description="Debezium's logical server name; names the heartbeat topic",
    )
    route_topic_prefix: str = Field(
        default="",
        description="put before each row's topic (e.g. 'dbz.' to publish beside the relay)",
    )
    password_file: str | None = Field(
        default=None,
        description="a properties file on the Connect worker holding database.password=...;"
        " the connector config only refers to it (${file:...}). None: no password is sent",
    )
    database_tls: TlsSettings | None = Field(
        default=None,
        description="TLS to PostgreSQL, as the relay's OUTBOX_DATABASE_TLS__*: the files (absolute"
        " paths on the Connect worker) and whether the server's name is checked. None: plaintext",
    )
    client_key_file: str | None = Field(
        default=None,
        description="the client certificate's key for Debezium: unencrypted PKCS#8 DER (an"
        f" absolute path on the Connect worker, not named {', '.join(NOT_DER_KEY_SUFFIXES)});"
        " required with a client certificate (OUTBOX_DATABASE_TLS__CERT_FILE)",
    )
    snapshot_mode: str = Field(
        default="no_data",
        description="no_data: only rows committed after the slot was made; initial: also every"
        " row in the table at the first start",
    )
    poll_interval_ms: int = Field(
        default=10,
        ge=1,
        description="Debezium's wait for more changes (its default, 500, adds ~0.5 s p50)",
    )
    heartbeat_interval_ms: int = Field(
        default=5000,
        ge=1,
        description="heartbeats move the slot on while the outbox is idle (WAL retention)",
    )

    @field_validator("database_url")
    @classmethod
    def _postgresql_without_password(cls, value: str) -> str:
        # The value is never echoed: a mistaken one may carry a password.
        scheme, separator, rest = value.partition("://")
        if not separator or scheme not in ("postgresql", "postgresql+asyncpg"):
            raise ValueError("Debezium reads PostgreSQL: write postgresql://user@host:port/db")
        if ":" in rest.split("/", 1)[0].rpartition("@")[0]:
            raise ValueError("leave the password out of the URL: give password_file")
        return value

    @field_validator("password_file", "client_key_file")
    @classmethod
    def _absolute_path(cls, value: str | None) -> str | None:
        if value is not None and not PurePosixPath(value).is_absolute():
            raise ValueError("the file's path on the Connect worker must be absolute")
        return value

    @field_validator("client_key_file")
    @classmethod
    def _named_as_der(cls, value: str | None) -> str | None:
        if value is not None and value.lower().endswith(NOT_DER_KEY_SUFFIXES):
            raise ValueError(
                "pgjdbc reads a key named .pem or .key as PEM, .p12 or .pfx as PKCS#12: name"
                " the PKCS#8 DER key otherwise, e.g. client-key.pk8"
            )
        return value

    @field_validator("database_tls")
    @classmethod
    def _tls_files_the_driver_can_read(cls, value: TlsSettings | None) -> TlsSettings | None:
        if value is None:
            return None
        if value.ca_file is None:
            # The relay falls back to the system's CAs; PostgreSQL's JDBC driver would read
            # ~/.postgresql/root.crt of the worker's user instead.
            raise ValueError(
                "Debezium's PostgreSQL driver does not read the system's CAs: give ca_file"
                " (OUTBOX_DATABASE_TLS__CA_FILE)"
            )
        for path in (value.ca_file, value.cert_file, value.key_file):
            if path is not None and not PurePosixPath(path).is_absolute():
                raise ValueError("the TLS files' paths on the Connect worker must be absolute")
        return value

    @model_validator(mode="after")
    def _client_key_for_the_client_certificate(self) -> DebeziumSettings:
        has_certificate = self.database_tls is not None and self.database_tls.cert_file is not None
        if has_certificate and self.client_key_file is None:
            raise ValueError(
                "Debezium's PostgreSQL driver (pgjdbc) reads a PEM key as RSA (an EC key fails):"
                " give it the key of OUTBOX_DATABASE_TLS__KEY_FILE as PKCS#8 DER"
                f" (`{DER_KEY_COMMAND}`), as client_key_file (--client-key-file)"
            )
        if not has_certificate and self.client_key_file is not None:
            raise ValueError(
                "client_key_file is the key of a client certificate: give the certificate too"
                " (OUTBOX_DATABASE_TLS__CERT_FILE)"
            )
        return self

    @property
    def heartbeat_topic(self) -> str:
        """The topic Debezium sends heartbeats to; it must exist (brokers rarely auto-create)."""
        return f"{HEARTBEAT_TOPIC_PREFIX}.{self.topic_prefix}"


def connector_config(settings: DebeziumSettings) -> dict[str, str]:
    """The connector's settings (for Connect's REST API or a standalone properties file).

    settings: the database, table, slot and naming of this connector.
    The password is never in it: a `${file:...}` reference to `settings.password_file`, resolved
    by the worker's file config provider, or no password at all.
    """
    url = make_url(settings.database_url)
    placement = ",".join(
        f"{column}:header:{header}"
        for column, header in (
            ("event_type", HEADER_EVENT_TYPE),
            ("schema_version", HEADER_SCHEMA_VERSION),
            ("event_id", HEADER_EVENT_ID),
        )
    )
    binary_passthrough = "io.debezium.converters.BinaryDataConverter"
    config = {
        "name": settings.name,
        "connector.class": CONNECTOR_CLASS,
        "tasks.max": "1",
        "plugin.name": "pgoutput",
        "database.hostname": url.host or "localhost",
        "database.port": str(url.port or 5432),
        "database.user": url.username or "postgres",
        "database.dbname": url.database or "postgres",
        "topic.prefix": settings.topic_prefix,
        "table.include.list": settings.table,
        "publication.name": settings.publication_name or settings.slot_name,
        "publication.autocreate.mode": "filtered",
        "slot.name": settings.slot_name,
        "snapshot.mode": settings.snapshot_mode,
        "tombstones.on.delete": "false",
        # Else every record carries four __debezium.context.* headers the relay's do not.
        "extended.headers.enabled": "false",
        "poll.interval.ms": str(settings.poll_interval_ms),
        # The slot's confirmed position moves with Connect's offset commits and heartbeats, so
        # PostgreSQL keeps no WAL for an idle outbox.
        "lsn.flush.mode": "connector_and_driver",
        "heartbeat.interval.ms": str(settings.heartbeat_interval_ms),
        # bytea key and value pass through unchanged; heartbeats (structs) go out as JSON
        # (ByteArrayConverter would fail the task on the first heartbeat).
        "key.converter": binary_passthrough,
        "key.converter.delegate.converter.type": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.delegate.converter.type.schemas.enable": "false",
        "value.converter": binary_passthrough,
        "value.converter.delegate.converter.type": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.delegate.converter.type.schemas.enable": "false",
        "transforms": "outbox,dropid,contenttype",
        "transforms.outbox.type": "io.debezium.transforms.outbox.EventRouter",
        "transforms.outbox.table.field.event.id": "event_id",
        "transforms.outbox.table.field.event.key": "partition_key",
        "transforms.outbox.table.field.event.payload": "value",
        "transforms.outbox.route.by.field": "topic",
        "transforms.outbox.route.topic.replacement": settings.route_topic_prefix
        + "${routedByValue}",
        # The relay's header order: event-type, schema-version, event-id, then content-type.
        "transforms.outbox.table.fields.additional.placement": placement,
        # The router always adds a header "id" (the event id again); the relay's records have none.
        "transforms.dropid.type": "org.apache.kafka.connect.transforms.DropHeaders",
        "transforms.dropid.headers": "id",
        "transforms.contenttype.type": "org.apache.kafka.connect.transforms.InsertHeader",
        "transforms.contenttype.header": HEADER_CONTENT_TYPE,
        "transforms.contenttype.value.literal": CONTENT_TYPE_JSON,
    }
    if settings.password_file is not None:
        config[PASSWORD_KEY] = f"${{file:{settings.password_file}:{PASSWORD_KEY}}}"
    config.update(_tls_options(settings.database_tls, settings.client_key_file))
    return config


def _tls_options(tls: TlsSettings | None, client_key_file: str | None) -> dict[str, str]:
    """Debezium's options for TLS to PostgreSQL as `tls` says (the relay's meaning: the
    certificate is always verified, the host name when `check_hostname`), with the relay's
    client certificate and `client_key_file` as its key (PKCS#8 DER) if it has one."""
    if tls is None:
        # Plaintext, said so: Debezium's default (prefer) tries TLS without verifying the server
        # and falls back to plaintext without a word.
        return {SSL_MODE_KEY: "disable"}
    options = {
        SSL_MODE_KEY: "verify-full" if tls.check_hostname else "verify-ca",
        "database.sslrootcert": str(tls.ca_file),
    }
    if tls.cert_file is not None and client_key_file is not None:
        options["database.sslcert"] = tls.cert_file
        options["database.sslkey"] = client_key_file
    return options


def switch_statements(settings: DebeziumSettings) -> list[str]:
    """The SQL that fixes where Debezium will start, run before the relay stops when a service
    moves from the relay to Debezium (docs/operations.md): the publication of the outbox table,
    then the replication slot. Every row committed after the slot was made is streamed by the
    connector once it starts, whenever that is; the relay publishes those committed before.

    settings: the connector's settings (its table, publication and slot names).
    """
    publication = settings.publication_name or settings.slot_name
    return [
        f"CREATE PUBLICATION {publication} FOR TABLE {settings.table}",
        f"SELECT pg_create_logical_replication_slot('{settings.slot_name}', 'pgoutput')",
    ]


def as_properties(config: dict[str, str]) -> str:
    """`config` as a Java properties file (a standalone worker's connector file)."""
    return "".join(f"{key}={_escape(value)}\n" for key, value in config.items())


def as_json(config: dict[str, str]) -> str:
    """`config` as the JSON body of `PUT /connectors/<name>/config` (creates or updates)."""
    return json.dumps(config, indent=2) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")
