"""A Kafka broker of a test's own with SASL PLAIN users and an authorizer (ACLs enforced).

It runs the jars of `deploy/local/stack.sh`'s cache (`stack.sh libs` fetches them once), in KRaft
combined mode on free ports, its data in the test's directory. Clients log in on the SASL
listener; `admin` is a super user (as is the broker itself on its controller listener).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from bench.stack import REPO, STACK_SCRIPT, kafka_libs_dir
from contracts import KafkaConnection
from tests.integration.redis_server import free_port
from tests.waiting import wait_until

KAFKA_VERSION = os.environ.get("KAFKA_VERSION", "4.1.0")
LOG4J_CONFIG = REPO / "deploy" / "local" / "log4j2.yaml"
_START_TIMEOUT_S = 120.0
_TOOL_TIMEOUT_S = 120.0
_LIBS_TIMEOUT_S = 600.0
"""Maven's first fetch of the jars."""
ADMIN = "admin"


def kafka_libs() -> Path:
    """The Kafka jars of the local stack's cache (`KAFKA_LIBS_DIR`), fetched by `stack.sh libs`
    when they are not there yet; fails naming the fix when they cannot be had."""
    if shutil.which("java") is None:
        raise RuntimeError("java not found (Kafka needs a JDK 17+ on PATH)")
    libs = kafka_libs_dir() / KAFKA_VERSION
    fetch_stack_libs([libs / f"kafka_2.13-{KAFKA_VERSION}.jar"], what="Kafka's jars")
    return libs


def fetch_stack_libs(wanted: Sequence[Path], *, what: str, **versions: str) -> None:
    """Run `stack.sh libs` (Maven fetches the local stack's jars into its cache) when a file of
    `wanted` is missing; fails naming `what`, the files still missing and the script's error.

    versions: further version variables for the script (e.g. DEBEZIUM_VERSION), besides
        KAFKA_VERSION.
    """
    if all(jar.is_file() for jar in wanted):
        return
    fetched = subprocess.run(
        ["bash", str(STACK_SCRIPT), "libs"],
        capture_output=True,
        text=True,
        timeout=_LIBS_TIMEOUT_S,
        check=False,
        env={**os.environ, "KAFKA_VERSION": KAFKA_VERSION, **versions},
    )
    missing = [str(jar) for jar in wanted if not jar.is_file()]
    if fetched.returncode != 0 or missing:
        raise RuntimeError(
            f"{what} are missing ({', '.join(missing)}) and `{STACK_SCRIPT} libs` could not"
            f" fetch them:\n{fetched.stderr[-2000:]}"
        )


def single_node_settings(data: Path) -> list[str]:
    """The server.properties lines every one-node test cluster has: its data in `data`, no
    topic made by accident, internal topics with one replica, no rebalance delay."""
    return [
        f"log.dirs={data}",
        "num.partitions=3",
        "auto.create.topics.enable=false",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=3",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
    ]


def kafka_jvm(libs: Path, log_file: Path, *args: str, heap: str = "-Xmx256m") -> list[str]:
    """The command line of a small JVM on the Kafka jars in `libs`, logging to `log_file` (a
    tool's class or `kafka.Kafka`, and its arguments)."""
    return [
        "java",
        heap,
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        f"-Dkafka.log.file={log_file}",
        "-Dkafka.log.level=WARN",
        "-cp",
        f"{libs}/*",
        *args,
    ]


async def run_kafka_tool(command: Sequence[str]) -> str:
    """Run a Kafka CLI JVM (a `kafka_jvm` command line) to its end; returns its output, fails
    with it on a non-zero exit or after two minutes."""
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=_TOOL_TIMEOUT_S)
    text = output.decode(errors="replace")
    if process.returncode != 0:
        tool = command[command.index("-cp") + 2] if "-cp" in command else command[0]  # the class
        raise RuntimeError(f"{tool} exited {process.returncode}:\n{text[-3000:]}")
    return text


def topic_write_acl(principal: str, topic: str) -> tuple[str, ...]:
    """AclCommand's arguments for what a producer of `topic` needs (after `--add`, or after
    `--remove --force`): Write and Describe on it, for User:`principal`."""
    return (
        *("--allow-principal", f"User:{principal}"),
        *("--operation", "Write", "--operation", "Describe", "--topic", topic),
    )


def new_cluster_id() -> str:
    """A random KRaft cluster id that never starts with '-' (as Kafka's Uuid: one that did
    would read as an option of kafka-storage)."""
    cluster_id = "-"
    while cluster_id.startswith("-"):
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    return cluster_id


def _plain_jaas(user: str, password: str, users: Mapping[str, str]) -> str:
    accounts = " ".join(f'user_{name}="{secret}"' for name, secret in users.items())
    return (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{user}" password="{password}" {accounts};'
    )


class SaslKafkaServer:
    """One broker (KRaft, broker and controller) with a SASL_PLAINTEXT listener and ACLs."""

    def __init__(self, directory: Path, *, users: Mapping[str, str]) -> None:
        """directory: its config, log and data go there.
        users: name -> password of the SASL PLAIN users besides `admin`.
        """
        self.libs = kafka_libs()
        self.directory = directory
        self.port = free_port()
        self.controller_port = free_port()
        self.passwords = {ADMIN: "admin-" + uuid.uuid4().hex, **users}
        self._process: asyncio.subprocess.Process | None = None

    @property
    def log_file(self) -> Path:
        """The broker's log."""
        return self.directory / "kafka.log"

    def connection(self, user: str) -> KafkaConnection:
        """How `user` reaches this broker."""
        return KafkaConnection(
            bootstrap_servers=f"127.0.0.1:{self.port}",
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            sasl_username=user,
            sasl_password=SecretStr(self.passwords[user]),
        )

    def _write_config(self) -> Path:
        config = self.directory / "server.properties"
        jaas = _plain_jaas(ADMIN, self.passwords[ADMIN], self.passwords)
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=SASL_PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{self.port}",
                    "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,"
                    "CONTROLLER:PLAINTEXT",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=SASL_PLAINTEXT",
                    "sasl.enabled.mechanisms=PLAIN",
                    "sasl.mechanism.inter.broker.protocol=PLAIN",
                    f"listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas}",
                    "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                    # The controller listener is the broker's own (PLAINTEXT: ANONYMOUS).
                    f"super.users=User:{ADMIN};User:ANONYMOUS",
                    *single_node_settings(self.directory / "data"),
                    "",
                ]
            )
        )
        return config

    def java(self, *args: str, heap: str = "-Xmx256m") -> list[str]:
        """The command line of a JVM on the Kafka jars (a tool's class and its arguments)."""
        return kafka_jvm(self.libs, self.log_file, *args, heap=heap)

    def admin_properties(self) -> Path:
        """A client config file (`--command-config`) that logs the CLI tools in as admin."""
        path = self.directory / "admin.properties"
        jaas = _plain_jaas(ADMIN, self.passwords[ADMIN], {})
        path.write_text(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
            f"sasl.jaas.config={jaas}\nrequest.timeout.ms=10000\ndefault.api.timeout.ms=30000\n"
        )
        return path

    async def run_tool(self, *args: str) -> str:
        """Run a Kafka CLI class (e.g. org.apache.kafka.tools.AclCommand) to its end; returns
        its output, fails with it on a non-zero exit."""
        return await run_kafka_tool(self.java(*args))

    async def start(self, *, topics: Mapping[str, int]) -> None:
        """Format its storage, start it, wait until admin can list topics, create `topics`
        (name -> partitions)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        await self.run_tool(
            "kafka.tools.StorageTool", "format", "-t", new_cluster_id(), "-c", str(config)
        )
        with self.log_file.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self.java("kafka.Kafka", str(config), heap="-Xmx512m"), stdout=log, stderr=log
            )
        process = self._process

        async def answers() -> bool:
            if process.returncode is not None:
                raise RuntimeError(f"the SASL broker exited at start; see {self.log_file}")
            try:
                async with self.admin() as admin:
                    await admin.list_topics()
            except KafkaError:
                return False
            return True

        await wait_until(
            answers,
            within=_START_TIMEOUT_S,
            what=f"the SASL broker ({self.log_file})",
            interval=0.5,
        )
        new_topics = [NewTopic(name, count, replication_factor=1) for name, count in topics.items()]
        async with self.admin() as admin:
            await admin.create_topics(new_topics)

    @contextlib.asynccontextmanager
    async def admin(self) -> AsyncIterator[AIOKafkaAdminClient]:
        """A started admin client logged in as the super user."""
        client = AIOKafkaAdminClient(**self.connection(ADMIN).client_kwargs())
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
