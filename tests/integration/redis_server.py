"""A standalone redis-server of a test's own: a free port, its own directory, any config lines.

For tests that must restart, stop or configure a Redis (ACL users, a password) without touching
the shared stack's servers.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import ConnectionError

from tests.conftest import wait_until

_START_TIMEOUT_S = 20.0


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """One redis-server process (no persistence) that this test starts and stops."""

    def __init__(self, directory: Path, *, config: str = "") -> None:
        """directory: its config, log and data go there.
        config: extra redis.conf lines (e.g. ACL users, `requirepass`).
        """
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server not found: install the redis-server package")
        self.directory = directory
        self.port = free_port()
        self.config = config
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:<port>/0` (credentials travel separately)."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_file(self) -> Path:
        """The server's log."""
        return self.directory / "redis.log"

    async def start(self, *, admin: tuple[str, str] | None = None) -> None:
        """Start it and wait until it answers PING.

        admin: (username, password) to PING with when the default user is disabled.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "redis.conf"
        conf.write_text(
            f'port {self.port}\nbind 127.0.0.1\ndir "{self.directory}"\n'
            f'logfile "{self.log_file}"\nsave ""\nappendonly no\n{self.config}\n'
        )
        process = await asyncio.create_subprocess_exec(
            "redis-server", str(conf), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._process = process
        username, password = admin if admin else (None, None)
        client = Redis(port=self.port, username=username, password=password)

        async def answers() -> bool:
            if process.returncode is not None:
                raise RuntimeError(f"redis-server exited at start; see {self.log_file}")
            try:
                return bool(await client.ping())
            except ConnectionError:
                return False

        try:
            await wait_until(answers, within=_START_TIMEOUT_S, what=f"redis-server on {self.port}")
        finally:
            await client.aclose()

    async def stop(self) -> None:
        """SIGKILL it (no data is kept) and wait until it is gone."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await asyncio.wait_for(self._process.wait(), timeout=10)
        self._process = None
