"""A standalone redis-server of a test's own: a free port, its own directory, any config lines.

For tests that must restart, stop or configure a Redis (ACL users, a password) without touching
the shared stack's servers. With `INVALIDATOR_TEST_STACK=containers` it is a container of
REDIS_IMAGE on the host's network instead of a local process, its config lines given as
arguments.
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import socket
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import ConnectionError

from tests.integration.containers import REDIS_IMAGE, ContainerSpec, PortRange, RunningContainer
from tests.integration.stack import CONTAINERS, stack_kind
from tests.waiting import wait_until

_START_TIMEOUT_S = 20.0
_RDB_FILE = "dump.rdb"
"""What redis-server saves to and loads at its start, in its `dir`."""


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """One redis-server (no persistence but the snapshots a test asks for) that this test
    starts and stops."""

    def __init__(self, directory: Path, *, config: str = "") -> None:
        """directory: its config, log and data go there (a process's; a container keeps its
        own).
        config: extra redis.conf lines (e.g. ACL users, `requirepass`).
        """
        self.in_container = stack_kind() == CONTAINERS
        if not self.in_container and shutil.which("redis-server") is None:
            raise RuntimeError("redis-server not found: install the redis-server package")
        self.directory = directory
        self.config = config
        self._process: asyncio.subprocess.Process | None = None
        self._container: RunningContainer | None = None
        if self.in_container:
            self.port = PortRange.from_environment().pick(1, taken=set())[0]
        else:
            self.port = free_port()

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:<port>/0` (credentials travel separately)."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_file(self) -> Path:
        """The server's log (a process's; a container's is its output)."""
        return self.directory / "redis.log"

    async def start(self, *, admin: tuple[str, str] | None = None) -> None:
        """Start it and wait until it answers PING.

        admin: (username, password) to PING with when the default user is disabled.
        """
        exited = await (self._start_container() if self.in_container else self._start_process())
        username, password = admin if admin else (None, None)
        client = Redis(port=self.port, username=username, password=password)

        async def answers() -> bool:
            if await exited():
                raise RuntimeError(f"redis-server exited at start: {await self._output()}")
            try:
                return bool(await client.ping())
            except ConnectionError:
                return False

        try:
            await wait_until(answers, within=_START_TIMEOUT_S, what=f"redis-server on {self.port}")
        finally:
            await client.aclose()

    async def _start_process(self) -> Callable[[], Awaitable[bool]]:
        """Start redis-server with a redis.conf in `directory`; returns a check: has it exited?"""
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

        async def exited() -> bool:
            return process.returncode is not None

        return exited

    async def _start_container(self) -> Callable[[], Awaitable[bool]]:
        """Start a container of REDIS_IMAGE; returns a check: has it exited?"""
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no"]
        for line in self.config.splitlines():
            # `name value...` of redis.conf is `--name value...` on redis-server's command line.
            name, *values = shlex.split(line, comments=True) or [""]
            if name:
                command += [f"--{name}", *values]
        spec = ContainerSpec(
            f"redis-{self.port}",
            REDIS_IMAGE.name(),
            REDIS_IMAGE.variable,
            self.port,
            command=command,
        )
        container = await asyncio.to_thread(
            RunningContainer.start, spec, session=uuid.uuid4().hex[:8]
        )
        self._container = container

        async def exited() -> bool:
            return not await asyncio.to_thread(container.running)

        return exited

    async def _output(self) -> str:
        if self._container is not None:
            return await asyncio.to_thread(self._container.logs)
        return f"see {self.log_file}"

    async def save_snapshot(self, name: str) -> Path:
        """`SAVE` its dataset to an RDB file and keep a copy as `<directory>/<name>` (a local
        process only: a container keeps its files inside); the copy's path."""
        self._require_process("a snapshot")
        client = Redis(port=self.port)
        try:
            await client.save()
        finally:
            await client.aclose()
        snapshot = self.directory / name
        shutil.copyfile(self.directory / _RDB_FILE, snapshot)
        return snapshot

    async def restart_from(self, snapshot: Path) -> None:
        """Kill it and start it again, on the same port, from `snapshot` (`save_snapshot`): the
        dataset it had then, whatever was written since is gone, as after an operator's
        restore from a backup."""
        self._require_process("a restart from a snapshot")
        await self.stop()
        shutil.copyfile(snapshot, self.directory / _RDB_FILE)
        await self.start()

    def _require_process(self, what: str) -> None:
        if self.in_container:
            raise RuntimeError(
                f"{what} needs a local redis-server (its files): run this test with "
                "INVALIDATOR_TEST_STACK unset"
            )

    async def stop(self) -> None:
        """SIGKILL it (nothing is saved; a snapshot saved before is loaded at the next start)
        and wait until it is gone."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await asyncio.wait_for(self._process.wait(), timeout=10)
        self._process = None
        if self._container is not None:
            await asyncio.to_thread(self._container.stop)
        self._container = None
