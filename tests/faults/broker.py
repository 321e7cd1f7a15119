"""The local stack's Kafka broker processes, for fault tests that stop, freeze or kill them.

The pids come from `deploy/local/stack.sh`'s pid files; a test that needs them fails (never
skips) when the broker is not one the local stack started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from bench.stack import REPO, start_local_stack
from tests.conftest import wait_until
from tests.integration.stack import LOCAL, STACK_VARIABLE, stack_kind


def stack_dir() -> Path:
    """Where the local stack keeps its data, logs and pid files (`STACK_DIR`)."""
    return Path(os.environ.get("STACK_DIR", REPO / ".stack"))


def broker_pid(directory: Path, node: int | None = None) -> int:
    """The pid of the local stack's broker (`node` of a multi-broker profile, else the only one).

    directory: the stack's STACK_DIR.
    """
    pid_file = directory / "run" / ("kafka.pid" if node is None else f"kafka-{node}.pid")
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError) as error:
        raise AssertionError(
            f"this test stops the broker of the local stack (deploy/local/stack.sh) and needs "
            f"its pid file {pid_file} ({STACK_VARIABLE}={LOCAL}): {error}"
        ) from error
    return pid


async def process_gone(pid: int) -> bool:
    """Whether `pid` has exited (reaped or a zombie): a condition for `wait_until`."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


async def stop_broker() -> None:
    """SIGTERM the local stack's broker and wait until it has shut down (`stack.sh up` starts it
    again)."""
    pid = broker_pid(stack_dir())
    os.kill(pid, signal.SIGTERM)
    await wait_until(lambda: process_gone(pid), within=90, what="the broker to shut down")


@contextlib.asynccontextmanager
async def broker_restored_afterwards() -> AsyncIterator[None]:
    """On exit, however the test ended, resume a frozen broker and bring the stack up again
    (`stack.sh up` starts a stopped broker and waits for its group coordinator), so that the
    tests after this one find it usable."""
    directory = stack_dir()
    pid_file = directory / "run" / "kafka.pid"
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGCONT)
        # With containers the test found no local broker to stop: nothing to bring back.
        if stack_kind() == LOCAL:
            await asyncio.to_thread(start_local_stack)
