"""A Kafka broker of a test's own whose only client listener is SASL_SSL with SCRAM-SHA-512.

KRaft combined mode on free ports of `INVALIDATOR_TEST_PORTS`, the jars of deploy/local/stack.sh's
cache (`tests.faults.kafka_server.kafka_libs`), its data in the test's directory. The broker
reads its key and certificates as PEM (`ssl.keystore.type=PEM`, `ssl.truststore.type=PEM`) from
`tests.certificates`; the SCRAM users are written into its storage when it is formatted
(`kafka-storage format --add-scram`), so they exist before it first starts. Every SCRAM user may
do anything (no authorizer): this broker proves encryption and login, not ACLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from contracts import KafkaConnection, TlsSettings
from tests.certificates import KeyPair
from tests.faults.kafka_server import kafka_jvm, kafka_libs, new_cluster_id, single_node_settings
from tests.integration.containers import PortRange
from tests.integration.tls_redis import PICKED_PORTS
from tests.waiting import wait_until

_START_TIMEOUT_S = 120.0
_TOOL_TIMEOUT_S = 120.0
MECHANISM = "SCRAM-SHA-512"
ADMIN = "admin"
USERS = ("invalidator", "publisher")
"""The SCRAM users besides `admin`, each with a password of its own."""


class ScramTlsKafkaServer:
    """One broker (KRaft, broker and controller) with a SASL_SSL listener (SCRAM-SHA-512)."""

    def __init__(self, directory: Path, *, ca: Path, server: KeyPair) -> None:
        """directory: its config, log and data go there.
        ca: the CA certificate of its truststore.
        server: the certificate and key it presents.
        """
        self.libs = kafka_libs()
        self.directory = directory
        self.ca = ca
        self.server = server
        ports = PortRange.from_environment().pick(2, taken=PICKED_PORTS)
        self.port, self.controller_port = ports
        self.passwords = {name: f"{name}-{uuid.uuid4().hex}" for name in (ADMIN, *USERS)}
        self._process: asyncio.subprocess.Process | None = None

    @property
    def bootstrap_servers(self) -> str:
        """`127.0.0.1:<port>` of the SASL_SSL listener."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        """The broker's log."""
        return self.directory / "kafka.log"

    def connection(
        self, user: str, *, tls: TlsSettings, password: SecretStr | None = None
    ) -> KafkaConnection:
        """How `user` reaches this broker over SASL_SSL, trusting what `tls` says.

        password: instead of the user's own (a wrong one, for refusals).
        """
        return KafkaConnection(
            bootstrap_servers=self.bootstrap_servers,
            security_protocol="SASL_SSL",
            sasl_mechanism=MECHANISM,
            sasl_username=user,
            sasl_password=password or SecretStr(self.passwords[user]),
            tls=tls,
        )

    def _write_config(self) -> Path:
        config = self.directory / "server.properties"
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN}" password="{self.passwords[ADMIN]}";'
        )
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=SASL_SSL://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=SASL_SSL://127.0.0.1:{self.port}",
                    # The controller listener is the broker's own, on the loopback only.
                    "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=SASL_SSL",
                    f"sasl.enabled.mechanisms={MECHANISM}",
                    f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
                    f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config={jaas}",
                    "ssl.keystore.type=PEM",
                    f"ssl.keystore.location={self.server.bundle()}",
                    "ssl.truststore.type=PEM",
                    f"ssl.truststore.location={self.ca}",
                    "ssl.client.auth=none",
                    *single_node_settings(self.directory / "data"),
                    "",
                ]
            )
        )
        return config

    def _java(self, *args: str, heap: str = "-Xmx256m") -> list[str]:
        return kafka_jvm(self.libs, self.log_file, *args, heap=heap)

    async def _format_storage(self, config: Path) -> None:
        cluster_id = new_cluster_id()
        scram = [
            arg
            for name, password in self.passwords.items()
            for arg in ("--add-scram", f"{MECHANISM}=[name={name},password={password}]")
        ]
        command = ["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)]
        process = await asyncio.create_subprocess_exec(
            *self._java(*command, *scram), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        output, _ = await asyncio.wait_for(process.communicate(), timeout=_TOOL_TIMEOUT_S)
        if process.returncode != 0:
            # The output may echo the command line, passwords and all: only its length is shown.
            raise RuntimeError(
                f"kafka-storage format exited {process.returncode} ({len(output)} bytes of"
                f" output withheld; see {self.log_file})"
            )

    async def start(self, *, topics: Mapping[str, int]) -> None:
        """Format its storage with the SCRAM users, start it, wait until the admin can list
        topics over SASL_SSL, create `topics` (name -> partitions). Stopped again if it fails."""
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        await self._format_storage(config)
        with self.log_file.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self._java("kafka.Kafka", str(config), heap="-Xmx512m"), stdout=log, stderr=log
            )
        process = self._process

        async def answers() -> bool:
            if process.returncode is not None:
                raise RuntimeError(f"the SASL_SSL broker exited at start; see {self.log_file}")
            try:
                async with self.admin() as admin:
                    await admin.list_topics()
            except KafkaError:
                return False
            return True

        try:
            await wait_until(
                answers,
                within=_START_TIMEOUT_S,
                what=f"the SASL_SSL broker ({self.log_file})",
                interval=0.5,
            )
            async with self.admin() as admin:
                await admin.create_topics(
                    [NewTopic(name, count, replication_factor=1) for name, count in topics.items()]
                )
        except BaseException:
            await self.stop()
            raise

    @contextlib.asynccontextmanager
    async def admin(self) -> AsyncIterator[AIOKafkaAdminClient]:
        """A started admin client logged in as `admin`, trusting the broker's CA."""
        connection = self.connection(ADMIN, tls=TlsSettings(ca_file=str(self.ca)))
        client = AIOKafkaAdminClient(**connection.client_kwargs())
        try:
            await client.start()
            yield client
        finally:
            await client.close()

    async def stop(self) -> None:
        """SIGKILL it (its data is the test's) and wait until it is gone."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await asyncio.wait_for(self._process.wait(), timeout=30)
        self._process = None
