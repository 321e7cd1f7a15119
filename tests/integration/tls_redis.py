"""A standalone redis-server of a test's own that speaks TLS only (`port 0`, `tls-port`), with
the least-privilege users of deploy/redis-acl.conf and an admin, its default user off.

Its certificate comes from `tests.certificates` (any `KeyPair` of it: the good one, the expired
one, the wrong host's). Clients need no certificate of their own unless `admin_client_cert` is
given.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import uuid
from pathlib import Path

from pydantic import SecretStr
from redis.asyncio import Redis
from redis.exceptions import ConnectionError

from contracts import RedisTarget, TlsSettings
from tests.certificates import KeyPair
from tests.integration.containers import PortRange
from tests.waiting import wait_until

_START_TIMEOUT_S = 20.0
ACL_FILE = Path(__file__).resolve().parents[2] / "deploy" / "redis-acl.conf"
USERS = ("invalidator", "cache", "watchdog")
"""The users of deploy/redis-acl.conf, each with a password of its own."""
ADMIN = "admin"
PICKED_PORTS: set[int] = set()
"""The ports this run's TLS test servers were given (Redis and Kafka): never given twice, even to
a server built before another one binds its port."""


def acl_users(passwords: dict[str, str]) -> list[str]:
    """redis.conf lines: the default user off, ADMIN with every right, and the users of
    deploy/redis-acl.conf, each with its password of `passwords` (user name -> password)."""
    lines = ["user default off", f"user {ADMIN} on >{passwords[ADMIN]} ~* &* +@all"]
    acl_lines = [line for line in ACL_FILE.read_text().splitlines() if line.startswith("user ")]
    for line in acl_lines:
        name = line.split()[1]
        lines.append(line.replace(" on ", f" on >{passwords[name]} ", 1))
    assert len(acl_lines) == len(USERS), f"{ACL_FILE} has other users than {USERS}"
    return lines


class TlsRedisServer:
    """One redis-server (no persistence) on a TLS port only, started and stopped by a test."""

    def __init__(
        self,
        directory: Path,
        *,
        ca: Path,
        server: KeyPair,
        admin_client_cert: KeyPair | None = None,
        plaintext: bool = False,
    ) -> None:
        """directory: its config and log go there.
        ca: the CA certificate it trusts for client certificates.
        server: the certificate it presents.
        admin_client_cert: when given, every client must present a certificate signed by `ca`
            (`tls-auth-clients yes`); the admin's PING at start presents this one.
        plaintext: serve plaintext on the port instead, no TLS (for clients that wrongly
            connect with TLS).
        """
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server not found: install the redis-server package")
        self.directory = directory
        self.ca = ca
        self.server = server
        self.admin_client_cert = admin_client_cert
        self.plaintext = plaintext
        self.port = PortRange.from_environment().pick(1, taken=PICKED_PORTS)[0]
        self.passwords = {name: f"{name}-{uuid.uuid4().hex}" for name in (ADMIN, *USERS)}
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """`rediss://127.0.0.1:<port>/0` (`redis://` when plaintext; credentials travel
        separately)."""
        return f"{'redis' if self.plaintext else 'rediss'}://127.0.0.1:{self.port}/0"

    @property
    def log_file(self) -> Path:
        """The server's log."""
        return self.directory / "redis.log"

    def target(self, user: str, *, tls: TlsSettings | None, url: str | None = None) -> RedisTarget:
        """A target on this server logged in as `user`, connecting with `tls`.

        url: instead of `url` (e.g. a `redis://` one with tls None, for a client that forgets
            TLS).
        """
        return RedisTarget(
            name=f"tls-{user}",
            url=url or self.url,
            username=user,
            password=SecretStr(self.passwords[user]),
            tls=tls,
        )

    def admin(self) -> Redis:
        """A client logged in as the admin, trusting any certificate (call `aclose`)."""
        client_cert = self.admin_client_cert
        return Redis(
            port=self.port,
            username=ADMIN,
            password=self.passwords[ADMIN],
            ssl=not self.plaintext,
            ssl_cert_reqs=ssl.CERT_NONE,
            ssl_check_hostname=False,
            ssl_certfile=None if client_cert is None else str(client_cert.cert),
            ssl_keyfile=None if client_cert is None else str(client_cert.key),
        )

    def _config(self) -> str:
        if self.plaintext:
            lines = [f"port {self.port}"]
        else:
            lines = [
                "port 0",
                f"tls-port {self.port}",
                f"tls-ca-cert-file {self.ca}",
                f"tls-cert-file {self.server.cert}",
                f"tls-key-file {self.server.key}",
                f"tls-auth-clients {'no' if self.admin_client_cert is None else 'yes'}",
            ]
        lines += [
            "bind 127.0.0.1",
            f'dir "{self.directory}"',
            f'logfile "{self.log_file}"',
            'save ""',
            "appendonly no",
            *acl_users(self.passwords),
        ]
        return "\n".join(lines) + "\n"

    async def start(self) -> None:
        """Start it and wait until the admin's PING is answered (stopped again if it
        is not)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "redis.conf"
        conf.write_text(self._config())
        process = await asyncio.create_subprocess_exec(
            "redis-server", str(conf), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._process = process
        # The admin does not check the certificate: an expired or wrong-host one must start too.
        admin = self.admin()

        async def answers() -> bool:
            if process.returncode is not None:
                raise RuntimeError(f"redis-server exited at start: see {self.log_file}")
            try:
                return bool(await admin.ping())
            except ConnectionError:
                return False

        try:
            await wait_until(
                answers, within=_START_TIMEOUT_S, what=f"redis-server on TLS port {self.port}"
            )
        except BaseException:
            await self.stop()
            raise
        finally:
            await admin.aclose()

    async def stop(self) -> None:
        """SIGKILL it (no data is kept) and wait until it is gone."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await asyncio.wait_for(self._process.wait(), timeout=10)
        self._process = None
