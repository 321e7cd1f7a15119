"""The secure profile's mirrored topology (`deploy/local/stack.sh up --secure --mirrored`) for
tests: a SASL_SSL cluster per region (eu's is the profile's own), MirrorMaker 2 between them as
the principal `mirror`, and each region's invalidator settings on its own cluster.

The export lines are evaluated as bench/secure_stack.py does: in an environment of
their own, reading each password from its file."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from bench.secure_stack import SecureProfile, evaluate_exports, profile_of
from bench.stack import STACK_SCRIPT, StackUnavailableError
from contracts import KafkaConnection
from invalidator import InvalidatorSettings
from tests.integration.mirrored import MIRRORED_REGIONS, other_region

SECURE_MIRRORED_ENV_VARIABLE = "INVALIDATOR_TEST_SECURE_MIRRORED_ENV"
"""A file of the export lines of `stack.sh env --secure --mirrored` of a secure mirrored topology
that runs already; unset: the tests run `stack.sh up --secure --mirrored` (it starts what is not
running)."""
MIRROR_PRINCIPAL = "mirror"
"""MirrorMaker's Kafka principal (deploy/kafka-acls.conf)."""
_UP_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class SecureMirrored:
    """The secure profile's clients and each region's cluster."""

    profile: SecureProfile
    """Every client's login (the same users and CA on both clusters)."""
    clusters: dict[str, str]
    """Region -> its cluster's SASL_SSL bootstrap address (MIRROR_KAFKA_<REGION>)."""

    @property
    def directory(self) -> Path:
        """The secure profile's state directory (`$STACK_DIR/secure`: certs, secrets, logs)."""
        return self.profile.ca_file.parent.parent

    def invalidator_settings(self, base: InvalidatorSettings, region: str) -> InvalidatorSettings:
        """`base` for `region`'s invalidator: its login on the region's own cluster, reading the
        other region's topics as MirrorMaker mirrors them."""
        kafka = base.kafka.model_copy(update={"bootstrap_servers": self.clusters[region]})
        return base.model_copy(update={"kafka": kafka, "mirrored_from": [other_region(region)]})

    def kafka_login(self, region: str, principal: str) -> KafkaConnection:
        """A Kafka login on `region`'s cluster as `principal` (its password from `secrets/`)."""
        return self.profile.invalidator_kafka.model_copy(
            update={
                "bootstrap_servers": self.clusters[region],
                "sasl_username": principal,
                "sasl_password": SecretStr(self.kafka_passwords()[principal]),
            }
        )

    def mirror_maker_logs(self) -> list[Path]:
        """Each MirrorMaker's log (mm2-<target region>.log)."""
        return [self.directory / "logs" / f"mm2-{region}.log" for region in MIRRORED_REGIONS]

    def mirror_maker_configs(self) -> list[Path]:
        """Each MirrorMaker's properties (mm2-<target region>.properties)."""
        return [
            self.directory / "mirrored" / f"mm2-{region}.properties" for region in MIRRORED_REGIONS
        ]

    def mirror_maker_pids(self) -> list[int]:
        """The process id of each MirrorMaker (its pid file)."""
        run = self.directory / "run"
        return [int((run / f"mm2-{region}.pid").read_text()) for region in MIRRORED_REGIONS]

    def kafka_passwords(self) -> dict[str, str]:
        """Every Kafka principal's password, by principal (for a search of logs and files)."""
        secrets = self.directory / "secrets"
        return {
            path.name.removeprefix("kafka-"): path.read_text().strip()
            for path in secrets.glob("kafka-*")
            if path.suffix != ".properties"
        }


def secure_mirrored() -> SecureMirrored:
    """The topology named by INVALIDATOR_TEST_SECURE_MIRRORED_ENV, else brought up by `stack.sh
    up --secure --mirrored`; fails (never skips) when it cannot be had."""
    given = os.environ.get(SECURE_MIRRORED_ENV_VARIABLE)
    environment = evaluate_exports(Path(given).read_text() if given else _up_secure_mirrored())
    return SecureMirrored(
        profile=profile_of(environment),
        clusters={
            region: environment[f"MIRROR_KAFKA_{region.upper()}"] for region in MIRRORED_REGIONS
        },
    )


def _up_secure_mirrored() -> str:
    command = ["bash", str(STACK_SCRIPT), "up", "--secure", "--mirrored"]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=_UP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise StackUnavailableError(
            f"{' '.join(command[1:])} took longer than {_UP_TIMEOUT_S:.0f}s"
        ) from error
    if result.returncode != 0:
        raise StackUnavailableError(
            f"{' '.join(command[1:])} failed (exit {result.returncode}):\n{result.stderr[-4000:]}"
        )
    return result.stdout
