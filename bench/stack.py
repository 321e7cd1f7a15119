"""The real services for benchmarks and tests: endpoints from the environment, or the local stack
(`deploy/local/stack.sh`), and where the local stack keeps its processes' files."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STACK_SCRIPT = REPO / "deploy" / "local" / "stack.sh"
INVALIDATOR_ENDPOINTS = ("INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS", "INVALIDATOR_REGIONS")
"""Kafka and every region's Redis, as the invalidator's settings name them."""
ENDPOINT_VARIABLES = (*INVALIDATOR_ENDPOINTS, "OUTBOX_DATABASE_URL")
"""Every endpoint the integration tests read: those and the outbox's PostgreSQL database."""


class StackUnavailableError(RuntimeError):
    """A service a benchmark or a test needs cannot be had; they fail, never skip."""


def ensure_stack(variables: Sequence[str] = ENDPOINT_VARIABLES) -> dict[str, str]:
    """The endpoints `variables` name, from the environment; when one is missing, the local
    stack is started and supplies it (set in os.environ too). A variable given always wins.
    """
    given = {name: os.environ[name] for name in variables if os.environ.get(name)}
    if len(given) == len(variables):
        return given
    started = start_local_stack()
    endpoints = {name: given.get(name) or started[name] for name in variables}
    os.environ.update(endpoints)
    return endpoints


def start_local_stack(
    *options: str, env: dict[str, str] | None = None, timeout_s: float = 600
) -> dict[str, str]:
    """Run `stack.sh up` (it starts what is not running) and return the endpoints it prints.

    options: arguments after `up` (e.g. `--brokers`, `3`).
    env: variables over this process's environment (STACK_DIR, ports).
    timeout_s: how long `up` may take.
    """
    endpoints = {}
    for line in stack_up_output(*options, env=env, timeout_s=timeout_s).splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            endpoints[name] = shlex.split(value)[0] if value else ""
    missing = [name for name in ENDPOINT_VARIABLES if not endpoints.get(name)]
    if missing:
        raise StackUnavailableError(f"{STACK_SCRIPT} up printed no {', '.join(missing)}")
    return endpoints


def stack_up_output(
    *options: str, env: dict[str, str] | None = None, timeout_s: float = 600
) -> str:
    """Run `stack.sh up` (it starts what is not running); the `export` lines it prints.

    options: arguments after `up` (e.g. `--secure`).
    env: variables over this process's environment (STACK_DIR, ports).
    timeout_s: how long `up` may take (subprocess.TimeoutExpired after that).
    Raises StackUnavailableError when `up` fails.
    """
    result = subprocess.run(
        ["bash", str(STACK_SCRIPT), "up", *options],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if result.returncode != 0:
        raise StackUnavailableError(
            f"{STACK_SCRIPT} up {' '.join(options)} failed (exit {result.returncode}):"
            f"\n{result.stderr[-4000:]}"
        )
    return result.stdout


MIRROR_VARIABLES = ("MIRROR_KAFKA_EU", "MIRROR_KAFKA_US", "MIRROR_LINK_CONTROL")
"""What `stack.sh up --mirrored` prints besides: each region's cluster, the link's control port."""
MIRRORED_SERVICES = ("kafka-eu", "kafka-us", "mm2-eu", "mm2-us", "link")
"""The processes of the mirrored topology, by the names of their pid and log files."""


def start_mirrored_stack(
    env: dict[str, str] | None = None, timeout_s: float = 900
) -> dict[str, str]:
    """Run `stack.sh up --mirrored` (it starts what is not running: the local stack and the
    mirrored topology) and return every variable it exports, the MIRROR_* ones included.

    env: variables over this process's environment (STACK_DIR, ports, MIRROR_LINK_DELAY_MS).
    timeout_s: how long `up` may take (a cold start resolves MirrorMaker's jars with Maven).
    Raises StackUnavailableError when `up` fails or prints no MIRROR_* variable.
    """
    try:
        endpoints = start_local_stack("--mirrored", env=env, timeout_s=timeout_s)
    except subprocess.TimeoutExpired as error:
        raise StackUnavailableError(
            f"{STACK_SCRIPT} up --mirrored took longer than {timeout_s:.0f}s"
        ) from error
    missing = [name for name in MIRROR_VARIABLES if not endpoints.get(name)]
    if missing:
        raise StackUnavailableError(f"{STACK_SCRIPT} up --mirrored printed no {', '.join(missing)}")
    return endpoints


def mirrored_pid_file(name: str, stack: Path | None = None) -> Path:
    """The pid file of a process of the mirrored topology: `kafka-eu`, `kafka-us`, `mm2-eu`,
    `mm2-us` (MirrorMaker into that region) or `link`.

    stack: the stack's directory (default `stack_dir()`).
    """
    if name not in MIRRORED_SERVICES:
        raise ValueError(f"no mirrored service {name!r}; one of {', '.join(MIRRORED_SERVICES)}")
    return (stack or stack_dir()) / "run" / f"{name}.pid"


def stack_dir() -> Path:
    """Where the local stack keeps its data, logs and pid files (`STACK_DIR`, as stack.sh)."""
    return Path(os.environ.get("STACK_DIR", REPO / ".stack"))


def kafka_libs_dir() -> Path:
    """The cache of Kafka's jars (`KAFKA_LIBS_DIR`, else `<STACK_DIR>/kafka-libs`, as stack.sh),
    one directory per Kafka version."""
    return Path(os.environ.get("KAFKA_LIBS_DIR") or stack_dir() / "kafka-libs")
