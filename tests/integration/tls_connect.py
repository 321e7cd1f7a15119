"""A Kafka Connect worker of a test's own (standalone) with Debezium's PostgreSQL connector, whose
worker, producer and admin clients log in to a SASL_SSL broker (SCRAM-SHA-512) and trust it
through a PEM truststore.

It runs on the jars of deploy/local/stack.sh's cache, as `stack.sh up --debezium` does: the
broker's and MirrorMaker's (connect-runtime) on the classpath, the Debezium plugin directory on
`plugin.path` (`stack.sh libs` fetches them once). Its SCRAM password reaches it through the file
config provider: the worker's properties name a file of the test's, and never hold the password.
It logs every configuration it reads (INFO, AbstractConfig included), so that a test can look
for secrets in its log.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pydantic import SecretStr

from bench.connect_worker import ConnectWorker
from bench.stack import kafka_libs_dir
from tests.faults.kafka_server import KAFKA_VERSION, fetch_stack_libs
from tests.integration.containers import PortRange
from tests.integration.tls_kafka import MECHANISM
from tests.integration.tls_redis import PICKED_PORTS
from tests.waiting import wait_until

DEBEZIUM_VERSION = os.environ.get("DEBEZIUM_VERSION", "3.6.1.Final")
"""As deploy/local/stack.sh's."""
POSTGRES_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"
KAFKA_PASSWORD_KEY = "kafka.password"
"""The key the worker's secrets file holds its SCRAM password under."""
CLIENT_PREFIXES = ("", "producer.", "admin.")
"""The worker's own clients, its source tasks' producers, and their admin clients (topic
creation): each needs the security settings under its prefix."""
_START_TIMEOUT_S = 120.0
_STOP_TIMEOUT_S = 30.0
_LOG4J = """\
status = warn
shutdownHook = disable
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.log.file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
"""


def connect_libs() -> tuple[Path, Path, Path]:
    """The broker's jars, MirrorMaker's (connect-runtime) and Debezium's plugin directory in the
    local stack's cache, fetched by `stack.sh libs` when one is missing; fails naming the fix."""
    cache = kafka_libs_dir()
    broker = cache / KAFKA_VERSION
    mirror = cache / f"{KAFKA_VERSION}-mirror"
    plugins = cache / f"debezium-{DEBEZIUM_VERSION}"
    connector = plugins / "debezium-connector-postgres"
    wanted = (
        broker / f"kafka_2.13-{KAFKA_VERSION}.jar",
        mirror / f"connect-runtime-{KAFKA_VERSION}.jar",
        connector / f"debezium-connector-postgres-{DEBEZIUM_VERSION}.jar",
    )
    fetch_stack_libs(
        wanted, what="Kafka Connect's or Debezium's jars", DEBEZIUM_VERSION=DEBEZIUM_VERSION
    )
    return broker, mirror, plugins


class ScramTlsConnectWorker:
    """One standalone Connect worker with Debezium, its clients on SASL_SSL (SCRAM-SHA-512)."""

    def __init__(
        self,
        directory: Path,
        *,
        bootstrap_servers: str,
        user: str,
        password: SecretStr,
        ca: Path,
    ) -> None:
        """directory: its properties, secrets file, offsets and log go there.
        bootstrap_servers: the broker's SASL_SSL listener, host:port.
        user, password: its SCRAM login.
        ca: the PEM file of the CA it trusts the broker by.
        """
        self.directory = directory
        self.bootstrap_servers = bootstrap_servers
        self.user = user
        self.password = password
        self.ca = ca
        self.port = PortRange.from_environment().pick(1, taken=PICKED_PORTS)[0]
        self.rest = ConnectWorker(f"http://127.0.0.1:{self.port}")
        """Its REST API."""
        self._process: asyncio.subprocess.Process | None = None

    @property
    def log_file(self) -> Path:
        """The worker's log (its stdout and stderr too)."""
        return self.directory / "connect.log"

    def _write_config(self, plugins: Path) -> Path:
        secrets = self.directory / "kafka-secrets.properties"
        secrets.write_text(f"{KAFKA_PASSWORD_KEY}={self.password.get_secret_value()}\n")
        secrets.chmod(0o600)
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required"
            f' username="{self.user}" password="${{file:{secrets}:{KAFKA_PASSWORD_KEY}}}";'
        )
        security = [
            f"{prefix}{line}"
            for prefix in CLIENT_PREFIXES
            for line in (
                "security.protocol=SASL_SSL",
                f"sasl.mechanism={MECHANISM}",
                f"sasl.jaas.config={jaas}",
                "ssl.truststore.type=PEM",
                f"ssl.truststore.location={self.ca}",
            )
        ]
        config = self.directory / "worker.properties"
        config.write_text(
            "\n".join(
                [
                    f"bootstrap.servers={self.bootstrap_servers}",
                    f"listeners={self.rest.url}",
                    f"plugin.path={plugins}",
                    "plugin.discovery=service_load",
                    "key.converter=org.apache.kafka.connect.converters.ByteArrayConverter",
                    "value.converter=org.apache.kafka.connect.converters.ByteArrayConverter",
                    f"offset.storage.file.filename={self.directory / 'offsets'}",
                    "offset.flush.interval.ms=10000",
                    "producer.linger.ms=0",
                    # Secrets by reference: this worker's SCRAM password, a connector's
                    # database.password.
                    "config.providers=file",
                    "config.providers.file.class="
                    "org.apache.kafka.common.config.provider.FileConfigProvider",
                    *security,
                    "",
                ]
            )
        )
        return config

    async def start(self) -> None:
        """Start it and wait until its REST API lists Debezium's PostgreSQL connector; fails
        naming its log (and is stopped again) if it exits or does not within the deadline."""
        broker, mirror, plugins = connect_libs()
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self._write_config(plugins)
        log4j = self.directory / "log4j2.properties"
        log4j.write_text(_LOG4J)
        with self.log_file.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                "java", "-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log4j}",
                f"-Dkafka.log.file={self.log_file}",
                "-cp", f"{broker}/*:{mirror}/*",
                "org.apache.kafka.connect.cli.ConnectStandalone", str(config),
                stdout=log, stderr=log,
            )  # fmt: skip
        process = self._process

        async def lists_debezium() -> bool:
            if process.returncode is not None:
                raise RuntimeError(f"the Connect worker exited at start; see {self.log_file}")
            try:
                plugins_listed = await self.rest.request("GET", "/connector-plugins")
            except OSError:
                return False
            return any(plugin["class"] == POSTGRES_CONNECTOR for plugin in plugins_listed)

        try:
            await wait_until(
                lists_debezium,
                within=_START_TIMEOUT_S,
                what=f"the SASL_SSL Connect worker ({self.log_file})",
                interval=0.5,
            )
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """SIGTERM it, SIGKILL it if it has not stopped within a deadline, and wait until it is
        gone."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=_STOP_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await asyncio.wait_for(process.wait(), timeout=_STOP_TIMEOUT_S)
