"""Processes for fault tests (invalidators, a write service, a relay): spawning them, signalling
them, waiting for their exit or their marker file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.stack import REPO
from invalidator import InvalidatorSettings
from tests.waiting import wait_until


def spawn(
    args: list[str],
    settings: InvalidatorSettings,
    log: Path,
    *,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Run `python <args>` from the repository with the settings' group prefix, broker and
    mirrored regions.

    args: the interpreter's arguments (a script path, or `-m invalidator ...`).
    settings: its group prefix, bootstrap servers and mirrored_from are passed on.
    log: stdout and stderr are appended here.
    env: further environment variables (e.g. INVALIDATOR_STATS_FILE).
    """
    variables = {
        **os.environ,
        "INVALIDATOR_GROUP_PREFIX": settings.group_prefix,
        "INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "INVALIDATOR_MIRRORED_FROM": json.dumps(settings.mirrored_from),
        "PYTHONPATH": str(REPO),
        **(env or {}),
    }
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, *args], env=variables, stdout=output, stderr=output, cwd=REPO
        )


def spawn_invalidator(
    settings: InvalidatorSettings,
    region: str,
    log: Path,
    *,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """`python -m invalidator run --region <region>` as a process of its own (see `spawn`)."""
    return spawn(["-m", "invalidator", "run", "--region", region], settings, log, env=env)


def file_exists(path: Path) -> Callable[[], Awaitable[bool]]:
    """A condition for `wait_until`: whether `path` exists (a marker a process writes)."""

    async def check() -> bool:
        return path.exists()

    return check


async def exited(process: subprocess.Popen[bytes]) -> bool:
    """Whether `process` has exited (a condition for `wait_until`)."""
    return process.poll() is not None


async def stop_process(
    process: subprocess.Popen[bytes], signum: signal.Signals, *, within: float, what: str
) -> int:
    """Send `signum` and wait up to `within` seconds for the exit; its status."""
    process.send_signal(signum)
    await wait_until(lambda: exited(process), within=within, what=what, interval=0.05)
    return process.wait()


def kill_if_running(*processes: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL whichever of `processes` still runs and reap it (test teardown)."""
    for process in processes:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
