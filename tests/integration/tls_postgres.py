"""A PostgreSQL server of a test's own that takes TLS connections only (`ssl=on`, `hostssl`
lines alone in pg_hba.conf) and password logins (scram-sha-256), with a `relay` user owning an
`outbox` database. With `logical_replication`, also what Debezium needs: `wal_level=logical`,
a `hostssl replication` line, and the REPLICATION attribute for `relay`. With `client_ca`, also a
`connector` user (REPLICATION, a member of `relay`) that logs in by a client certificate alone:
pg_hba's `cert` method, the certificate signed by `client_ca`, its CN `client` mapped to the user
(pg_ident.conf); no password is taken for it.

PostgreSQL refuses to run as root: as root, its files are made for the `postgres` user, under
/var/tmp (a test's temporary directory may sit under a parent that user cannot enter). Its
certificate comes from `tests.certificates`.
"""

from __future__ import annotations

import glob
import os
import shutil
import ssl
import subprocess
import uuid
from pathlib import Path

import asyncpg
from pydantic import SecretStr

from tests.certificates import KeyPair
from tests.integration.containers import PortRange
from tests.integration.tls_redis import PICKED_PORTS

_ROOT = Path("/var/tmp/invalidator-test-postgres")
_OS_USER = "postgres"
_START_TIMEOUT_S = 60
USER = "relay"
DATABASE = "outbox"
CERTIFICATE_USER = "connector"
"""With `client_ca`: the user that logs in by its client certificate (CN=client) alone."""
CERTIFICATE_CN = "client"
"""The common name of `tests.certificates`' client certificate, mapped to CERTIFICATE_USER."""
_CERTIFICATE_MAP = "client_certificates"


def _bindir() -> Path:
    """Where initdb, pg_ctl and postgres are (Debian: /usr/lib/postgresql/<version>/bin)."""
    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(found) / "initdb").exists():
            return Path(found)
    raise RuntimeError("PostgreSQL's server is not installed: install the postgresql package")


class TlsPostgresServer:
    """One PostgreSQL server on a port of its own, TLS and passwords only."""

    def __init__(
        self,
        *,
        ca: Path,
        server: KeyPair,
        logical_replication: bool = False,
        client_ca: Path | None = None,
    ) -> None:
        """ca: the CA that signed `server` (the superuser's own connections trust it).
        server: the certificate and key the server presents.
        logical_replication: whether `relay` may stream changes (a Debezium connector).
        client_ca: the CA whose client certificates log CERTIFICATE_USER in (with
        `logical_replication`, it may stream changes too); None: no such user.
        """
        self.ca = ca
        self.server = server
        self.logical_replication = logical_replication
        self.client_ca = client_ca
        self.port = PortRange.from_environment().pick(1, taken=PICKED_PORTS)[0]
        self.superuser_password = SecretStr(f"postgres-{uuid.uuid4().hex}")
        self.password = SecretStr(f"relay-{uuid.uuid4().hex}")
        self.directory = _ROOT / uuid.uuid4().hex[:12]
        self._bin = _bindir()

    def url(self, *, host: str = "127.0.0.1", user: str = USER) -> str:
        """A user's SQLAlchemy URL (the relay's by default), without a password."""
        return f"postgresql+asyncpg://{user}@{host}:{self.port}/{DATABASE}"

    async def start(self) -> None:
        """initdb, start, and create the relay user and its database; fails naming the log."""
        _ROOT.mkdir(mode=0o755, exist_ok=True)
        self.directory.mkdir(mode=0o700)
        data = self.directory / "data"
        password_file = self.directory / "superuser-password"
        password_file.write_text(self.superuser_password.get_secret_value())
        files = [("server.crt", self.server.cert), ("server.key", self.server.key)]
        if self.client_ca is not None:
            files.append(("client-ca.crt", self.client_ca))
        for name, source in files:
            shutil.copyfile(source, self.directory / name)
            (self.directory / name).chmod(0o600)
        for path in (self.directory, password_file, *(self.directory / name for name, _ in files)):
            self._own(path)
        self._run(
            self._bin / "initdb", "-D", data, "-U", "postgres", "-E", "UTF8", "--no-locale",
            "--auth=scram-sha-256", f"--pwfile={password_file}", "--no-sync",
        )  # fmt: skip
        self._write_access_rules(data)
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories=''"
            f" -c ssl=on -c ssl_cert_file={self.directory / 'server.crt'}"
            f" -c ssl_key_file={self.directory / 'server.key'}"
        )
        if self.client_ca is not None:
            options += f" -c ssl_ca_file={self.directory / 'client-ca.crt'}"
        if self.logical_replication:
            options += " -c wal_level=logical -c max_replication_slots=4 -c max_wal_senders=4"
        self._run(
            self._bin / "pg_ctl", "start", "-w", "-t", str(_START_TIMEOUT_S), "-D", data,
            "-l", self.directory / "postgres.log", "-o", options,
        )  # fmt: skip
        connection = await asyncpg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            password=self.superuser_password.get_secret_value(),
            database="postgres",
            ssl=ssl.create_default_context(cafile=str(self.ca)),
        )
        try:
            replication = " REPLICATION" if self.logical_replication else ""
            await connection.execute(
                f"CREATE ROLE {USER} LOGIN{replication}"
                f" PASSWORD '{self.password.get_secret_value()}'"
            )
            await connection.execute(f"CREATE DATABASE {DATABASE} OWNER {USER}")
            if self.client_ca is not None:
                # A member of relay: it owns what relay owns (the outbox table, for the
                # publication), and logs in by no password. relay may read its sessions'
                # statistics (pg_stat_ssl: whether it presented a certificate).
                await connection.execute(
                    f"CREATE ROLE {CERTIFICATE_USER} LOGIN{replication} IN ROLE {USER}"
                )
                await connection.execute(f"GRANT pg_read_all_stats TO {USER}")
        finally:
            await connection.close()

    def _write_access_rules(self, data: Path) -> None:
        """pg_hba.conf (TLS only; the first matching line decides) and, with `client_ca`,
        pg_ident.conf mapping the client certificate's CN to CERTIFICATE_USER."""
        lines = ["# TLS only: no 'host' line, so a plaintext connection is refused."]
        if self.client_ca is not None:
            databases = f"{DATABASE},replication" if self.logical_replication else DATABASE
            lines.append(
                f"hostssl  {databases}  {CERTIFICATE_USER}  127.0.0.1/32  cert"
                f"  map={_CERTIFICATE_MAP}"
            )
            (data / "pg_ident.conf").write_text(
                f"{_CERTIFICATE_MAP}  {CERTIFICATE_CN}  {CERTIFICATE_USER}\n"
            )
            self._own(data / "pg_ident.conf")
        lines.append("hostssl  all  all  127.0.0.1/32  scram-sha-256")
        if self.logical_replication:
            # "all" does not cover replication connections: they need a line of their own.
            lines.append(f"hostssl  replication  {USER}  127.0.0.1/32  scram-sha-256")
        (data / "pg_hba.conf").write_text("\n".join(lines) + "\n")
        self._own(data / "pg_hba.conf")

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its files."""
        if (self.directory / "data" / "postmaster.pid").exists():
            self._run(self._bin / "pg_ctl", "stop", "-m", "fast", "-D", self.directory / "data")
        shutil.rmtree(self.directory, ignore_errors=True)

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, _OS_USER, _OS_USER)

    def _run(self, *command: object) -> None:
        argv = [str(part) for part in command]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", _OS_USER, "--", *argv]
        done = subprocess.run(
            argv,
            check=False,
            cwd="/",
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT_S + 30,
        )
        if done.returncode != 0:
            log = self.directory / "postgres.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{argv[-1] if len(argv) < 4 else ' '.join(argv[:4])} failed: "
                f"{done.stdout}{done.stderr}{tail}"
            )
