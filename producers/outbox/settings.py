"""RelaySettings: the relay's settings, read from OUTBOX_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

from contracts.connections import KafkaConnection, TlsSettings


class RelaySettings(BaseSettings):
    """Everything `outbox relay` needs.

    `OUTBOX_DATABASE_URL` is a SQLAlchemy async URL: `postgresql+asyncpg://user@host/db` or
    `sqlite+aiosqlite:///path`; its password, if any, goes in `OUTBOX_DATABASE_PASSWORD`.
    Nested values use `__`: `OUTBOX_KAFKA__BOOTSTRAP_SERVERS=host:9092`.
    """

    model_config = SettingsConfigDict(
        env_prefix="OUTBOX_", env_nested_delimiter="__", extra="ignore", hide_input_in_errors=True
    )

    database_url: str = Field(description="SQLAlchemy async URL of the service's database")
    database_password: SecretStr | None = None
    database_tls: TlsSettings | None = Field(
        default=None,
        description="TLS to PostgreSQL (OUTBOX_DATABASE_TLS__CA_FILE...): the server's "
        "certificate is verified against ca_file, and its name against the URL's host",
    )
    kafka: KafkaConnection = Field(default_factory=KafkaConnection)
    batch_size: int = Field(default=500, ge=1, description="the most rows published per batch")
    poll_interval_s: float = Field(
        default=0.2, gt=0, description="the fallback wait for new rows (PostgreSQL notifies)"
    )
    retention_s: float = Field(
        default=0.0,
        ge=0,
        description="how long published rows are kept (marked) before deletion; 0: deleted "
        "once Kafka acknowledged them",
    )
    stats_interval_s: float = Field(default=10.0, gt=0)
    stats_file: Path | None = Field(default=None, description="JSON stats, rewritten periodically")

    @field_validator("database_url")
    @classmethod
    def _async_driver_without_password(cls, value: str) -> str:
        # The value is never echoed: a mistaken one may carry a password.
        scheme, separator, rest = value.partition("://")
        if not separator or scheme not in ("postgresql+asyncpg", "sqlite+aiosqlite"):
            raise ValueError(
                "write postgresql+asyncpg://user@host:port/db or sqlite+aiosqlite:///path"
            )
        credentials = rest.split("/", 1)[0].rpartition("@")[0]
        if ":" in credentials:
            raise ValueError("put the password in OUTBOX_DATABASE_PASSWORD, not in the URL")
        return value

    @model_validator(mode="after")
    def _tls_for_postgresql_only(self) -> RelaySettings:
        if self.database_tls is not None and not self.database_url.startswith("postgresql"):
            raise ValueError("OUTBOX_DATABASE_TLS is for PostgreSQL; SQLite is a local file")
        return self

    def connection_url(self) -> URL:
        """The URL to connect with: `database_url`, with `database_password` when set."""
        url = make_url(self.database_url)
        if self.database_password is not None:
            url = url.set(password=self.database_password.get_secret_value())
        return url
