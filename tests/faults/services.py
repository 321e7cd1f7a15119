"""The test stack's servers as processes, for fault tests that stop, freeze or kill one and start
it again: `service_process(name)` for `kafka`, `redis-eu` and `redis-us-<port>`, whichever stack
supplied them (`INVALIDATOR_TEST_STACK`).

On the local stack a service is the process of deploy/local/stack.sh's pid file, started again by
`stack.sh up` (the broker) or from the redis.conf stack.sh wrote (a Redis). In containers it is
the container's main process (the engine's State.Pid: the containers share the host's process
ids), started again as the same container. Either way the test signals the server itself, so a
fault is the same in both stacks.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bench.stack import (
    ENDPOINT_VARIABLES,
    MIRRORED_SERVICES,
    StackUnavailableError,
    mirrored_pid_file,
    stack_dir,
    start_local_stack,
    start_mirrored_stack,
)
from tests.integration.containers import RunningContainer, started_container, until_serving
from tests.integration.stack import CONTAINERS, LOCAL, STACK_VARIABLE, stack_kind
from tests.waiting import wait_until

KAFKA = "kafka"
"""The broker (the local stack's single broker, or its container)."""
REDIS_EU = "redis-eu"
"""Region eu's standalone Redis."""
STOP_WITHIN_S = 90.0
"""From SIGTERM until the process has exited (the broker's controlled shutdown)."""
GONE_WITHIN_S = 60.0
"""Before starting it again: until a stopped or killed server's process is gone."""
REDIS_ANSWERS_WITHIN_S = 30.0
"""From a local Redis's start until it answers PING."""


def redis_us(port: int) -> str:
    """The name of region us's cluster node on `port`."""
    return f"redis-us-{port}"


def process_exited(pid: int) -> bool:
    """Whether `pid` has exited (reaped, or a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


async def process_gone(pid: int) -> bool:
    """`process_exited`, as a condition for `wait_until`."""
    return process_exited(pid)


def local_pid(pid_file: Path) -> int | None:
    """The pid in `pid_file` while that process runs, else None."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return None if process_exited(pid) else pid


class ServiceProcess(abc.ABC):
    """One server of the test stack as a process: its pid; stop, freeze or kill it; start it
    again and wait until it serves (a Redis then has no data: it has no persistence)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @abc.abstractmethod
    async def current_pid(self) -> int | None:
        """Its process's pid while it runs, else None."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Which process it is (its pid file, its container), for messages."""

    @abc.abstractmethod
    async def _bring_up(self) -> None:
        """Start it if it does not run; wait until it serves as the stack's start leaves it."""

    async def pid(self) -> int:
        """Its process's pid; an AssertionError when it does not run."""
        pid = await self.current_pid()
        if pid is None:
            raise AssertionError(f"{self.name} is not running ({self.describe()})")
        return pid

    async def stop(self, *, within: float = STOP_WITHIN_S) -> None:
        """SIGTERM it and wait until its process has exited."""
        pid = await self.pid()
        os.kill(pid, signal.SIGTERM)
        await wait_until(lambda: process_gone(pid), within=within, what=f"{self.name} to exit")

    async def kill(self) -> None:
        """SIGKILL it (returns at once; `start_again` waits until the process is gone)."""
        os.kill(await self.pid(), signal.SIGKILL)

    @contextlib.asynccontextmanager
    async def frozen(self) -> AsyncIterator[None]:
        """SIGSTOP it for the block; SIGCONT on exit, however the block ends (unless the process
        is gone by then)."""
        pid = await self.pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    async def start_again(self) -> None:
        """Once its process is gone (stopped or killed), start it again and wait until it
        serves: the broker with its log as it was, a Redis with no data."""

        async def gone() -> bool:
            return await self.current_pid() is None

        await wait_until(gone, within=GONE_WITHIN_S, what=f"{self.name}'s process to be gone")
        await self._bring_up()

    async def restore(self) -> None:
        """However a test ended: resume it if frozen, start it again if it does not run, and
        wait until it serves, so the tests after this one find it usable."""
        pid = await self.current_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        await self._bring_up()


@contextlib.asynccontextmanager
async def restored_afterwards(service: ServiceProcess) -> AsyncIterator[None]:
    """Restore `service` (`ServiceProcess.restore`) on exit, however the block ends."""
    try:
        yield
    finally:
        await service.restore()


def service_process(name: str) -> ServiceProcess:
    """The server `name` (`kafka`, `redis-eu`, `redis-us-<port>`) of the stack
    `INVALIDATOR_TEST_STACK` names; a StackUnavailableError, before the test harms anything,
    when the stack did not start it (its endpoint came from the environment)."""
    if stack_kind() == CONTAINERS:
        return ContainerProcess(name, started_container(name))
    if name == KAFKA:
        return LocalBroker()
    if name == REDIS_EU or name.startswith("redis-us-"):
        return LocalRedis(name)
    raise ValueError(f"no server {name!r} in the test stack")


def _require_local(name: str, pid_file: Path) -> None:
    if not pid_file.is_file():
        raise StackUnavailableError(
            f"{pid_file} not found: this test stops or freezes the local stack's {name}"
            f" (deploy/local/stack.sh; unset {', '.join(ENDPOINT_VARIABLES)} to let the tests"
            f" start it, with {STACK_VARIABLE}={LOCAL} or unset)"
        )


class LocalBroker(ServiceProcess):
    """The local stack's broker: the pid of `run/kafka.pid`; `stack.sh up` starts it again
    (and waits for its group coordinator)."""

    def __init__(self) -> None:
        super().__init__(KAFKA)
        self.pid_file = stack_dir() / "run" / "kafka.pid"
        _require_local(self.name, self.pid_file)

    async def current_pid(self) -> int | None:
        return local_pid(self.pid_file)

    def describe(self) -> str:
        return f"pid file {self.pid_file}"

    async def _bring_up(self) -> None:
        await asyncio.to_thread(start_local_stack)


class LocalRedis(ServiceProcess):
    """A Redis of the local stack: the pid of `run/redis-<eu|us-port>.pid`; started again from
    the redis.conf stack.sh wrote, its data files deleted first."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        stack_name = name.removeprefix("redis-")
        self.pid_file = stack_dir() / "run" / f"redis-{stack_name}.pid"
        self.config = stack_dir() / "redis" / stack_name / "redis.conf"
        _require_local(name, self.pid_file)

    async def current_pid(self) -> int | None:
        return local_pid(self.pid_file)

    def describe(self) -> str:
        return f"pid file {self.pid_file}"

    def port(self) -> int:
        """The port of its redis.conf."""
        for line in self.config.read_text().splitlines():
            directive, _, value = line.strip().partition(" ")
            if directive == "port":
                return int(value)
        raise AssertionError(f"{self.config} names no port")

    async def _bring_up(self) -> None:
        if await self.current_pid() is None:
            (self.config.parent / "dump.rdb").unlink(missing_ok=True)
            shutil.rmtree(self.config.parent / "appendonlydir", ignore_errors=True)
            process = await asyncio.create_subprocess_exec(
                "redis-server",
                str(self.config),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
            if process.returncode != 0:
                raise AssertionError(f"redis-server {self.config}: {output.decode()}")
        client = Redis(
            host="127.0.0.1", port=self.port(), socket_timeout=2, socket_connect_timeout=2
        )

        async def answers() -> bool:
            try:
                return bool(await client.ping())
            except RedisError:
                return False

        try:
            await wait_until(answers, within=REDIS_ANSWERS_WITHIN_S, what=f"{self.name} to answer")
        finally:
            await client.aclose()


class ContainerProcess(ServiceProcess):
    """A server of the stack of containers: its container's main process (State.Pid); the same
    container started again (a Redis container has no persistence: it starts with no data)."""

    def __init__(self, name: str, container: RunningContainer) -> None:
        super().__init__(name)
        self.container = container

    async def current_pid(self) -> int | None:
        return await asyncio.to_thread(self.container.pid)

    def describe(self) -> str:
        return f"container {self.container.spec.role} of {self.container.spec.image}"

    async def _bring_up(self) -> None:
        if not await asyncio.to_thread(self.container.running):
            await asyncio.to_thread(self.container.start_again)
        await until_serving(self.container)


class MirroredProcess(ServiceProcess):
    """A process of the local stack's mirrored topology (`kafka-eu`, `kafka-us`, `mm2-eu`,
    `mm2-us`, `link`): the pid of its pid file; `stack.sh up --mirrored` starts what is down
    again and waits until MirrorMaker replicates."""

    def __init__(self, name: str) -> None:
        if name not in MIRRORED_SERVICES:
            raise ValueError(f"no mirrored service {name!r}; one of {', '.join(MIRRORED_SERVICES)}")
        super().__init__(name)
        self.pid_file = mirrored_pid_file(name)
        _require_local(name, self.pid_file)

    async def current_pid(self) -> int | None:
        return local_pid(self.pid_file)

    def describe(self) -> str:
        return f"pid file {self.pid_file}"

    async def _bring_up(self) -> None:
        # Not when it runs: `up --mirrored` waits on every cluster and MirrorMaker (seconds).
        if await self.current_pid() is None:
            await asyncio.to_thread(start_mirrored_stack)
