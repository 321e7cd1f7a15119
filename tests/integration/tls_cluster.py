"""A Redis Cluster of a test's own that speaks TLS only: 3 masters and 3 replicas, clients,
the cluster bus (`tls-cluster yes`) and replication (`tls-replication yes`) all over TLS, the
least-privilege users of deploy/redis-acl.conf on every node, replicas included.

Each node has `port 0`, a `tls-port` and a `cluster-port` of `INVALIDATOR_TEST_PORTS`, and
presents the CA's good server certificate (valid for 127.0.0.1). Replicas log in to their
masters as `replica`, a user that may only replicate. `redis-cli --cluster create` joins them,
logged in as the admin (its password in REDISCLI_AUTH, never on a command line).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from pydantic import SecretStr
from redis.asyncio import Redis
from redis.exceptions import RedisError

from contracts import RedisTarget, TlsSettings
from tests.certificates import KeyPair
from tests.integration.containers import PortRange
from tests.integration.tls_redis import ADMIN, PICKED_PORTS, USERS, acl_users
from tests.waiting import wait_until

NODES = 6
REPLICATION_USER = "replica"
_START_TIMEOUT_S = 30.0
_CREATE_TIMEOUT_S = 60.0
_NodeCheck = Callable[[Redis], Awaitable[bool]]


class TlsRedisCluster:
    """Six redis-server processes in cluster mode, TLS only, started and stopped by a test."""

    def __init__(self, directory: Path, *, ca: Path, server: KeyPair) -> None:
        """directory: a directory per node (config, log, nodes.conf) goes in it.
        ca: the CA certificate the nodes trust (for each other's certificates).
        server: the certificate and key every node presents.
        """
        for binary in ("redis-server", "redis-cli"):
            if shutil.which(binary) is None:
                raise RuntimeError(f"{binary} not found: install the redis-server package")
        self.directory = directory
        self.ca = ca
        self.server = server
        picked = PortRange.from_environment().pick(2 * NODES, taken=PICKED_PORTS)
        self.ports, self.bus_ports = picked[:NODES], picked[NODES:]
        self.passwords = {
            name: f"{name}-{uuid.uuid4().hex}" for name in (ADMIN, REPLICATION_USER, *USERS)
        }
        self._processes: list[asyncio.subprocess.Process] = []

    @property
    def url(self) -> str:
        """`rediss://127.0.0.1:<first node's port>` (a seed; credentials travel separately)."""
        return f"rediss://127.0.0.1:{self.ports[0]}"

    def target(self, user: str, *, tls: TlsSettings, **options: object) -> RedisTarget:
        """A Cluster target on these nodes logged in as `user`, connecting with `tls`.

        options: more RedisTarget fields (e.g. min_replicas_acked).
        """
        return RedisTarget.model_validate(
            {
                "name": f"tls-cluster-{user}",
                "url": self.url,
                "cluster": True,
                "username": user,
                "password": SecretStr(self.passwords[user]),
                "tls": tls,
                **options,
            }
        )

    def admin(self, port: int) -> Redis:
        """A standalone client of the node on `port`, logged in as the admin, trusting the CA."""
        return Redis(
            port=port,
            username=ADMIN,
            password=self.passwords[ADMIN],
            ssl=True,
            ssl_ca_certs=str(self.ca),
            ssl_cert_reqs=ssl.CERT_REQUIRED,
        )

    def _config(self, node: int) -> str:
        directory = self.directory / f"node-{node}"
        replication = self.passwords[REPLICATION_USER]
        lines = [
            "port 0",
            f"tls-port {self.ports[node]}",
            f"cluster-port {self.bus_ports[node]}",
            "bind 127.0.0.1",
            f"tls-ca-cert-file {self.ca}",
            f"tls-cert-file {self.server.cert}",
            f"tls-key-file {self.server.key}",
            "tls-auth-clients no",
            "tls-cluster yes",
            "tls-replication yes",
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            "cluster-node-timeout 2000",
            f'dir "{directory}"',
            f'logfile "{directory / "redis.log"}"',
            'save ""',
            "appendonly no",
            *acl_users(self.passwords),
            f"user {REPLICATION_USER} on >{replication} +psync +replconf +ping",
            f"masteruser {REPLICATION_USER}",
            f"masterauth {replication}",
        ]
        return "\n".join(lines) + "\n"

    async def start(self) -> None:
        """Start the nodes, join them (a replica per master), and wait until every node says
        `cluster_state:ok` and every master has its replica; stopped again if that fails."""
        try:
            for node in range(NODES):
                directory = self.directory / f"node-{node}"
                directory.mkdir(parents=True, exist_ok=True)
                (directory / "redis.conf").write_text(self._config(node))
                self._processes.append(
                    await asyncio.create_subprocess_exec(
                        "redis-server",
                        str(directory / "redis.conf"),
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            for port in self.ports:
                await self._wait_for(port, self._answers, "to answer PING")
            await self._create()
            for port in self.ports:
                await self._wait_for(port, self._settled, "cluster_state:ok and its replica")
        except BaseException:
            await self.stop()
            raise

    async def _create(self) -> None:
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        process = await asyncio.create_subprocess_exec(
            "redis-cli", "--tls", "--cacert", str(self.ca), "--user", ADMIN,
            "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "REDISCLI_AUTH": self.passwords[ADMIN]},
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), timeout=_CREATE_TIMEOUT_S)
        if process.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create: {output.decode()[-2000:]}")

    async def _wait_for(self, port: int, check: _NodeCheck, what: str) -> None:
        client = self.admin(port)

        async def ready() -> bool:
            if any(process.returncode is not None for process in self._processes):
                raise RuntimeError(f"a cluster node exited; see {self.directory}/node-*/redis.log")
            try:
                return await check(client)
            except (RedisError, OSError):
                return False

        try:
            await wait_until(ready, within=_START_TIMEOUT_S, what=f"node {port} {what}")
        finally:
            await client.aclose()

    @staticmethod
    async def _answers(client: Redis) -> bool:
        return bool(await client.ping())

    @staticmethod
    async def _settled(client: Redis) -> bool:
        info = await client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
        state = info.get("cluster_state") if isinstance(info, dict) else None
        if state is None:  # the raw reply: one `name:value` line each
            text = info.decode() if isinstance(info, bytes) else str(info)
            state = "ok" if "cluster_state:ok" in text.split() else text
        replication = await client.info("replication")
        if replication["role"] == "master":
            synced = int(replication.get("connected_slaves", 0)) >= 1
        else:
            synced = replication.get("master_link_status") == "up"
        return str(state) == "ok" and synced

    async def kill(self, port: int) -> None:
        """SIGKILL the node on `port` and wait until it is gone (its replica takes over after
        cluster-node-timeout, 2 s)."""
        process = self._processes[self.ports.index(port)]
        process.kill()
        await asyncio.wait_for(process.wait(), timeout=10)

    async def stop(self) -> None:
        """SIGKILL every node (no data is kept) and wait until they are gone."""
        for process in self._processes:
            if process.returncode is None:
                process.kill()
        for process in self._processes:
            await asyncio.wait_for(process.wait(), timeout=10)
        self._processes = []
