"""A Kafka broker of a test's own whose client listeners are all SASL_SSL with SCRAM-SHA-512.

KRaft combined mode on free ports of `INVALIDATOR_TEST_PORTS`, the jars of deploy/local/stack.sh's
cache (`tests.faults.kafka_server.kafka_libs`), its data in the test's directory. The broker
reads its key and certificates as PEM (`ssl.keystore.type=PEM`, `ssl.truststore.type=PEM`) from
`tests.certificates`; the SCRAM users are written into its storage when it is formatted
(`kafka-storage format --add-scram`), so they exist before it first starts. Every SCRAM user may
do anything (no authorizer): this broker proves encryption and login, not ACLs.

Besides its `SASL_SSL` listener it can have others, each presenting a certificate of its own (a
bad one a client must refuse, or one a test rotates with `set_listener_configs`, as an operator
does with `kafka-configs --alter`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
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
MAIN_LISTENER = "SASL_SSL"
"""The listener that presents the `server` certificate and that the admin client uses."""
EXPIRED_LISTENER = "EXPIRED"
WRONG_HOST_LISTENER = "WRONG_HOST"
ROTATING_LISTENER = "ROTATING"
"""Names of the session broker's other listeners (tests/integration/conftest.py `tls_kafka`)."""
NODE_ID = 1


class ScramTlsKafkaServer:
    """One broker (KRaft, broker and controller) whose client listeners are SASL_SSL
    (SCRAM-SHA-512)."""

    def __init__(
        self,
        directory: Path,
        *,
        ca: Path,
        server: KeyPair,
        other_listeners: Mapping[str, KeyPair] | None = None,
        inter_broker_listener: str = MAIN_LISTENER,
    ) -> None:
        """directory: its config, log and data go there.
        ca: the CA certificate of its truststore.
        server: the certificate and key its `SASL_SSL` listener presents.
        other_listeners: listener name (upper case) -> the certificate and key it presents.
        inter_broker_listener: the listener the broker would reach other brokers by (Kafka
            checks a new certificate of that one against the broker's own truststore).
        """
        self.libs = kafka_libs()
        self.directory = directory
        self.ca = ca
        self.server = server
        self.certificates = {MAIN_LISTENER: server, **(other_listeners or {})}
        """Listener name -> the certificate it was started with."""
        self.inter_broker_listener = inter_broker_listener
        ports = PortRange.from_environment().pick(len(self.certificates) + 1, taken=PICKED_PORTS)
        *listener_ports, self.controller_port = ports
        self.ports = dict(zip(self.certificates, listener_ports, strict=True))
        """Listener name -> its port on 127.0.0.1."""
        self.passwords = {name: f"{name}-{uuid.uuid4().hex}" for name in (ADMIN, *USERS)}
        self._process: asyncio.subprocess.Process | None = None

    @property
    def log_file(self) -> Path:
        """The broker's log."""
        return self.directory / "kafka.log"

    def connection(
        self,
        user: str,
        *,
        tls: TlsSettings,
        password: SecretStr | None = None,
        listener: str = MAIN_LISTENER,
    ) -> KafkaConnection:
        """How `user` reaches this broker over SASL_SSL, trusting what `tls` says.

        password: instead of the user's own (a wrong one, for refusals).
        listener: the listener to bootstrap from (the broker's metadata then names its
            address on that listener only).
        """
        return KafkaConnection(
            bootstrap_servers=f"127.0.0.1:{self.ports[listener]}",
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
        addresses = ",".join(f"{name}://127.0.0.1:{port}" for name, port in self.ports.items())
        protocols = "".join(f"{name}:SASL_SSL," for name in self.ports)
        per_listener = [
            line
            for name, pair in self.certificates.items()
            for line in (
                f"listener.name.{name.lower()}.{MECHANISM.lower()}.sasl.jaas.config={jaas}",
                f"listener.name.{name.lower()}.ssl.keystore.location={pair.bundle()}",
            )
        ]
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    f"node.id={NODE_ID}",
                    f"controller.quorum.voters={NODE_ID}@127.0.0.1:{self.controller_port}",
                    f"listeners={addresses},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners={addresses}",
                    # The controller listener is the broker's own, on the loopback only.
                    f"listener.security.protocol.map={protocols}CONTROLLER:PLAINTEXT",
                    "controller.listener.names=CONTROLLER",
                    f"inter.broker.listener.name={self.inter_broker_listener}",
                    f"sasl.enabled.mechanisms={MECHANISM}",
                    f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
                    *per_listener,
                    "ssl.keystore.type=PEM",
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

    async def set_listener_configs(self, listener: str, settings: Mapping[str, str]) -> None:
        """Set the broker's dynamic configs to `settings` (name -> value, e.g.
        `ssl.keystore.location`) of `listener` while it runs, as `kafka-configs --alter
        --entity-type brokers --entity-name 1 --add-config listener.name.<listener>.<name>=...`
        does (here through the Admin API's AlterConfigs, logged in as `admin`; unlike
        `--add-config`, each call replaces the broker's earlier dynamic configs, so pass every
        one that should stay). Returns once the broker accepted them (it applies them moments
        later); fails with the broker's reason when it refuses them.
        """
        configs = {f"listener.name.{listener.lower()}.{name}": v for name, v in settings.items()}
        async with self.admin() as admin:
            responses = await admin.alter_configs(
                [ConfigResource(ConfigResourceType.BROKER, str(NODE_ID), configs)]
            )
        refusals = [
            f"{name}: {message or f'error code {code}'}"
            for response in responses
            for code, message, _, name in response.resources
            if code
        ]
        if refusals:
            raise RuntimeError(f"the broker refused the configs: {'; '.join(refusals)}")

    async def presented_certificate(self, listener: str) -> bytes:
        """The certificate (DER) that `listener` presents to a new connection now (not checked:
        the handshake trusts anything, and no login follows)."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        _, writer = await asyncio.open_connection("127.0.0.1", self.ports[listener], ssl=context)
        try:
            tls: ssl.SSLObject = writer.get_extra_info("ssl_object")
            certificate = tls.getpeercert(binary_form=True)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
        assert certificate is not None, "the listener presented no certificate"
        return certificate

    async def stop(self) -> None:
        """SIGKILL it (its data is the test's) and wait until it is gone."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await asyncio.wait_for(self._process.wait(), timeout=30)
        self._process = None
