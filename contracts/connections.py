"""Connection settings shared by producers and the invalidator (pure data, no I/O).

Secrets are `SecretStr`: they never show in a repr, a log line or an error message.
"""

from __future__ import annotations

import ssl
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from contracts.ids import is_valid_id


class TlsSettings(BaseModel):
    """TLS for a Kafka or Redis connection."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    check_hostname: bool = True

    def context(self) -> ssl.SSLContext:
        """An SSL context from these files (reads them: call at start-up, not per request)."""
        context = ssl.create_default_context(cafile=self.ca_file)
        context.check_hostname = self.check_hostname
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


class KafkaConnection(BaseModel):
    """How to reach the Kafka cluster."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    bootstrap_servers: str = Field(
        default="127.0.0.1:19092", description="host:port[,host:port...] of the brokers"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    tls: TlsSettings | None = None

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers_have_ports(cls, value: str) -> str:
        # The value is never echoed: a mistaken one may carry credentials.
        for position, server in enumerate(value.split(","), start=1):
            if "@" in server:
                raise ValueError(
                    "put credentials in sasl_username/sasl_password, not in the servers "
                    "(keeps them out of logs)"
                )
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(
                    f"server {position} of the list is not host:port; write e.g. 127.0.0.1:9092"
                )
        return value

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka clients (and FastStream's KafkaBroker)."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        if self.tls is not None:
            kwargs["ssl_context"] = self.tls.context()
        return kwargs


class RedisTarget(BaseModel):
    """One Redis deployment of a region: a standalone server or a Redis Cluster."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    name: str = Field(description="a short name for logs and metrics, e.g. eu-main")
    url: str = Field(description="redis://host:port/db or rediss:// (no password in the URL)")
    cluster: bool = False
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsSettings | None = None
    socket_timeout_s: float = Field(default=2.0, gt=0)
    max_connections: int = Field(
        default=128, ge=1, description="connection pool size (per master for a Cluster)"
    )
    min_replicas_acked: int = Field(
        default=0,
        ge=0,
        description="replicas each master must have acknowledged a purge's writes to (WAIT)"
        " before the purge counts as done; 0: the master's reply is enough",
    )
    replicas_timeout_ms: int = Field(
        default=1000,
        ge=1,
        description="how long a purge waits for those replicas; fewer in time is a transient"
        " failure, retried with backoff",
    )

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not is_valid_id(value):
            raise ValueError("may only contain [A-Za-z0-9_.-]")
        return value

    @field_validator("url")
    @classmethod
    def _url_without_secret(cls, value: str) -> str:
        # Checked first, and the URL is never echoed: it may carry a password.
        if "@" in value:
            raise ValueError(
                "put credentials in username/password, not in the URL (keeps them out of logs)"
            )
        if not value.startswith(("redis://", "rediss://")):
            scheme = value.partition("://")[0] if "://" in value else "no scheme"
            raise ValueError(f"must start with redis:// or rediss:// (got {scheme!r})")
        return value

    @model_validator(mode="after")
    def _tls_with_rediss(self) -> RedisTarget:
        # redis-py speaks TLS only for rediss://: with redis:// the TLS options would reach its
        # plaintext connection, which fails on them at the first command (a TypeError).
        if self.tls is not None and not self.url.startswith("rediss://"):
            raise ValueError("tls is set: the url must start with rediss:// (TLS)")
        return self

    @model_validator(mode="after")
    def _wait_within_socket_timeout(self) -> RedisTarget:
        if self.min_replicas_acked and self.replicas_timeout_ms >= self.socket_timeout_s * 1000:
            raise ValueError(
                f"replicas_timeout_ms={self.replicas_timeout_ms} must be below socket_timeout_s"
                f" ({self.socket_timeout_s} s): a WAIT would otherwise end as a socket timeout"
            )
        return self

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for redis-py's `from_url` (standalone or Cluster)."""
        kwargs: dict[str, Any] = {
            "socket_timeout": self.socket_timeout_s,
            "socket_connect_timeout": self.socket_timeout_s,
            "max_connections": self.max_connections,
        }
        if self.username:
            kwargs["username"] = self.username
        if self.password:
            kwargs["password"] = self.password.get_secret_value()
        if self.tls is not None:
            kwargs["ssl_ca_certs"] = self.tls.ca_file
            kwargs["ssl_certfile"] = self.tls.cert_file
            kwargs["ssl_keyfile"] = self.tls.key_file
            kwargs["ssl_check_hostname"] = self.tls.check_hostname
        return kwargs
