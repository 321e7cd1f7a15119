"""The fault tests' handle on the stack's servers (tests/faults/services.py), checked on processes
of its own: which stack's handle a name gets, pid files, and stop, freeze, start again, restore."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.stack import StackUnavailableError
from tests.faults.services import (
    KAFKA,
    REDIS_EU,
    LocalBroker,
    LocalRedis,
    ServiceProcess,
    local_pid,
    process_exited,
    redis_us,
    service_process,
)
from tests.waiting import wait_until


@pytest.fixture
def local_stack_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty STACK_DIR, the local stack chosen."""
    monkeypatch.setenv("STACK_DIR", str(tmp_path))
    monkeypatch.delenv("INVALIDATOR_TEST_STACK", raising=False)
    (tmp_path / "run").mkdir()
    return tmp_path


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_us_node_is_named_by_its_port() -> None:
    assert redis_us(28001) == "redis-us-28001"


def test_a_pid_file_names_a_running_process_or_none(tmp_path: Path) -> None:
    pid_file = tmp_path / "server.pid"
    assert local_pid(pid_file) is None
    pid_file.write_text("not a pid\n")
    assert local_pid(pid_file) is None
    pid_file.write_text(f"{os.getpid()}\n")
    assert local_pid(pid_file) == os.getpid()
    finished = subprocess.Popen(["true"])
    finished.wait()
    pid_file.write_text(str(finished.pid))
    assert local_pid(pid_file) is None


def test_a_zombie_has_exited() -> None:
    child = subprocess.Popen(["true"])
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
        assert _state(child.pid) == "Z"
        assert process_exited(child.pid)
    finally:
        child.wait()
    assert process_exited(child.pid)
    assert not process_exited(os.getpid())


@pytest.mark.usefixtures("local_stack_dir")
@pytest.mark.parametrize(("name", "pid_file"), [(KAFKA, "kafka.pid"), (REDIS_EU, "redis-eu.pid")])
def test_the_local_stack_without_its_pid_file_is_refused_naming_it(
    name: str, pid_file: str, local_stack_dir: Path
) -> None:
    with pytest.raises(StackUnavailableError) as refused:
        service_process(name)
    assert f"{local_stack_dir / 'run' / pid_file} not found" in str(refused.value)
    assert "INVALIDATOR_TEST_STACK=local" in str(refused.value)


def test_the_local_stack_s_servers_come_from_its_files(local_stack_dir: Path) -> None:
    run = local_stack_dir / "run"
    for name in ("kafka", "redis-eu", "redis-us-17002"):
        (run / f"{name}.pid").write_text(f"{os.getpid()}\n")
    node = local_stack_dir / "redis" / "us-17002"
    node.mkdir(parents=True)
    (node / "redis.conf").write_text('# generated\nport 17002\nbind 127.0.0.1\ndir "/x"\n')
    broker, eu, us = (
        service_process(KAFKA),
        service_process(REDIS_EU),
        service_process(redis_us(17002)),
    )
    assert isinstance(broker, LocalBroker) and broker.pid_file == run / "kafka.pid"
    assert isinstance(eu, LocalRedis) and eu.config == local_stack_dir / "redis/eu/redis.conf"
    assert isinstance(us, LocalRedis) and us.pid_file == run / "redis-us-17002.pid"
    assert us.port() == 17002
    with pytest.raises(ValueError, match="no server 'postgres'"):
        service_process("postgres")


def test_containers_refuse_a_server_they_did_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVALIDATOR_TEST_STACK", "containers")
    with pytest.raises(StackUnavailableError) as refused:
        service_process(redis_us(1))  # never a port of the stack's (1024 and up)
    assert "no container redis-us-1 was started for this run (started: " in str(refused.value)


class _Child(ServiceProcess):
    """A child process as a server: `_bring_up` starts one when none runs."""

    def __init__(self) -> None:
        super().__init__("child")
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def current_pid(self) -> int | None:
        if self.process is None or process_exited(self.process.pid):
            return None
        return self.process.pid

    def describe(self) -> str:
        return "a child of the test"

    async def _bring_up(self) -> None:
        if await self.current_pid() is None:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", "import time; time.sleep(120)"
            )
            self.starts += 1


@pytest.fixture
async def child() -> AsyncIterator[_Child]:
    """A running `_Child`, killed afterwards."""
    server = _Child()
    await server.restore()
    try:
        yield server
    finally:
        if server.process is not None and server.process.returncode is None:
            server.process.kill()
            await server.process.wait()


async def test_stop_waits_until_the_process_has_exited(child: _Child) -> None:
    pid = await child.pid()
    await child.stop(within=10)
    assert process_exited(pid)
    with pytest.raises(AssertionError, match=r"child is not running \(a child of the test\)"):
        await child.pid()


async def _until_state(pid: int, *, stopped: bool) -> None:
    """Wait until `pid` is stopped (state T), or runs again (signals arrive asynchronously)."""

    async def reached() -> bool:
        return (_state(pid) == "T") is stopped

    await wait_until(reached, within=10, what=f"{pid} {'stopped' if stopped else 'running'}")


async def test_frozen_stops_the_process_for_the_block_alone(child: _Child) -> None:
    pid = await child.pid()
    async with child.frozen():
        await _until_state(pid, stopped=True)
    await _until_state(pid, stopped=False)
    with pytest.raises(RuntimeError, match="inside"):
        async with child.frozen():
            await _until_state(pid, stopped=True)
            raise RuntimeError("inside")
    await _until_state(pid, stopped=False)


async def test_start_again_waits_for_the_killed_process_then_starts_one(child: _Child) -> None:
    first = await child.pid()
    await child.kill()
    await child.start_again()
    assert child.starts == 2
    assert process_exited(first)
    assert child.process is not None and child.process.returncode is None


async def test_restore_resumes_a_frozen_process_and_starts_a_stopped_one(child: _Child) -> None:
    pid = await child.pid()
    os.kill(pid, signal.SIGSTOP)  # as a test that ended inside `frozen` would leave it
    await _until_state(pid, stopped=True)
    await child.restore()
    await _until_state(pid, stopped=False)
    assert child.starts == 1
    await child.stop(within=10)
    await child.restore()
    assert child.starts == 2
    assert child.process is not None and child.process.returncode is None
