"""The local stack's secure profile (`deploy/local/stack.sh up --secure`) as the settings of each
of its clients, read from the export lines `up --secure` / `env --secure` print.

The lines read each password from its file when they are evaluated, so they are evaluated by
bash, as `eval "$(stack.sh env --secure)"` would, in an environment of their own: this process's
environment (the plaintext stack's INVALIDATOR_* variables) is left as it is.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr, TypeAdapter

from bench.settings_env import kafka_environment, regions_environment
from bench.stack import STACK_SCRIPT, StackUnavailableError, stack_up_output
from contracts import KafkaConnection, RedisTarget, TlsSettings
from producers.outbox import RelaySettings

UP_TIMEOUT_S = 600.0
_EXPORT = re.compile(r"^export ([A-Z][A-Z0-9_]*)=", re.MULTILINE)
_REGIONS = TypeAdapter(dict[str, list[RedisTarget]])


@dataclass(frozen=True)
class SecureProfile:
    """Every client's settings on the secure profile, each its own principal."""

    invalidator_kafka: KafkaConnection
    """The invalidator's (and the operator commands') Kafka login."""
    invalidator_regions: dict[str, list[RedisTarget]]
    """Each region's Redis, as the Redis user `invalidator`."""
    publisher_kafka: KafkaConnection
    """A service's EventPublisher's Kafka login (`publisher`)."""
    cache_regions: dict[str, list[RedisTarget]]
    """Each region's Redis, as the CacheClient's user `cache`."""
    relay: RelaySettings
    """The outbox relay: PostgreSQL over TLS as `relay`, Kafka as `relay`."""
    environment: dict[str, str]
    """The evaluated variables themselves (passwords included: for the `invalidator` command)."""

    @property
    def ca_file(self) -> Path:
        """The profile's CA certificate (every server's certificate is signed by it)."""
        tls = self.invalidator_kafka.tls
        assert tls is not None and tls.ca_file is not None
        return Path(tls.ca_file)

    def invalidator_environment(self) -> dict[str, str]:
        """The INVALIDATOR_* variables: what an operator exports for the `invalidator` command."""
        return {k: v for k, v in self.environment.items() if k.startswith("INVALIDATOR_")}

    def password(self, name: str) -> SecretStr:
        """A password of the profile's `secrets/` (next to `certs/`), e.g. `kafka-watchdog`."""
        return SecretStr((self.ca_file.parent.parent / "secrets" / name).read_text().strip())

    def kafka_as(self, user: str) -> KafkaConnection:
        """The invalidator's Kafka settings logged in as `user` (e.g. `watchdog`, `admin`)."""
        return self.invalidator_kafka.model_copy(
            update={"sasl_username": user, "sasl_password": self.password(f"kafka-{user}")}
        )

    def regions_as(self, user: str) -> dict[str, list[RedisTarget]]:
        """Each region's Redis targets logged in as the Redis user `user` (e.g. `admin`)."""
        login = {"username": user, "password": self.password(f"redis-{user}")}
        return {
            region: [target.model_copy(update=login) for target in targets]
            for region, targets in self.invalidator_regions.items()
        }

    def watchdog_environment(self) -> dict[str, str]:
        """The INVALIDATOR_* variables of `invalidator watch`, logged in as `watchdog` to Kafka
        and to Redis (deploy/local/README.md, "The secure profile")."""
        return {
            **self.invalidator_environment(),
            **kafka_environment(self.kafka_as("watchdog")),
            **regions_environment(self.regions_as("watchdog")),
        }


def secure_profile(env_file: Path | None = None) -> SecureProfile:
    """The secure profile whose `stack.sh env --secure` lines `env_file` holds, else brought up
    by `stack.sh up --secure` (it starts what is not running, with this process's STACK_DIR and
    SECURE_* ports); StackUnavailableError when it cannot be had.

    env_file: the export lines of a secure profile that runs already.
    """
    return profile_of(evaluate_exports(env_file.read_text() if env_file else _up_secure()))


def _up_secure() -> str:
    try:
        return stack_up_output("--secure", timeout_s=UP_TIMEOUT_S)
    except subprocess.TimeoutExpired as error:
        raise StackUnavailableError(
            f"{STACK_SCRIPT} up --secure took longer than {UP_TIMEOUT_S:.0f}s"
        ) from error


def evaluate_exports(lines: str) -> dict[str, str]:
    """The variables the `export` lines set, evaluated by bash (their `$(cat <file>)` read)."""
    names = _EXPORT.findall(lines)
    if not names:
        raise StackUnavailableError("no export lines from stack.sh --secure")
    result = subprocess.run(
        ["bash", "-c", 'eval "$1" && env -0', "bash", lines],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    if result.returncode != 0:
        raise StackUnavailableError(f"evaluating the export lines failed: {result.stderr[-2000:]}")
    evaluated = dict(entry.split("=", 1) for entry in result.stdout.split("\0") if "=" in entry)
    return {name: evaluated[name] for name in names}


def kafka_connection(environment: Mapping[str, str], prefix: str) -> KafkaConnection:
    """The KafkaConnection of the `<prefix>*` variables (e.g. `PUBLISHER_KAFKA__`)."""
    return KafkaConnection(
        bootstrap_servers=environment[f"{prefix}BOOTSTRAP_SERVERS"],
        security_protocol=environment[f"{prefix}SECURITY_PROTOCOL"],
        sasl_mechanism=environment[f"{prefix}SASL_MECHANISM"],
        sasl_username=environment[f"{prefix}SASL_USERNAME"],
        sasl_password=SecretStr(environment[f"{prefix}SASL_PASSWORD"]),
        tls=TlsSettings(ca_file=environment[f"{prefix}TLS__CA_FILE"]),
    )


def profile_of(environment: Mapping[str, str]) -> SecureProfile:
    """Each client's settings of the evaluated variables of `env --secure`."""
    relay_tls = TlsSettings(ca_file=environment["OUTBOX_DATABASE_TLS__CA_FILE"])
    return SecureProfile(
        invalidator_kafka=kafka_connection(environment, "INVALIDATOR_KAFKA__"),
        invalidator_regions=_REGIONS.validate_json(environment["INVALIDATOR_REGIONS"]),
        publisher_kafka=kafka_connection(environment, "PUBLISHER_KAFKA__"),
        cache_regions=_REGIONS.validate_json(environment["CACHE_REGIONS"]),
        relay=RelaySettings(
            database_url=environment["OUTBOX_DATABASE_URL"],
            database_password=SecretStr(environment["OUTBOX_DATABASE_PASSWORD"]),
            database_tls=relay_tls,
            kafka=kafka_connection(environment, "OUTBOX_KAFKA__"),
        ),
        environment=dict(environment),
    )
