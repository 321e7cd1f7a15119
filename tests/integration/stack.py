"""The real services for integration tests: endpoints from the environment, else the local stack
or containers (`INVALIDATOR_TEST_STACK`)."""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STACK_SCRIPT = REPO / "deploy" / "local" / "stack.sh"
INVALIDATOR_ENDPOINTS = ("INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS", "INVALIDATOR_REGIONS")
"""Kafka and every region's Redis, as the invalidator's settings name them."""
ENDPOINT_VARIABLES = (*INVALIDATOR_ENDPOINTS, "OUTBOX_DATABASE_URL")
"""Every endpoint the integration tests read: those and the outbox's PostgreSQL database."""


STACK_VARIABLE = "INVALIDATOR_TEST_STACK"
"""Where the services the environment does not name come from: one of STACK_KINDS."""
LOCAL = "local"
CONTAINERS = "containers"
STACK_KINDS = (LOCAL, CONTAINERS)
"""`local`: deploy/local/stack.sh (the default); `containers`: tests/integration/containers.py."""


class StackUnavailableError(RuntimeError):
    """A service the integration tests need cannot be had; the tests fail, never skip."""


def stack_kind(environ: Mapping[str, str] = os.environ) -> str:
    """`INVALIDATOR_TEST_STACK`, `local` when unset or empty; any other value is refused."""
    kind = environ.get(STACK_VARIABLE, "").strip() or LOCAL
    if kind not in STACK_KINDS:
        raise StackUnavailableError(
            f"{STACK_VARIABLE}={kind!r} is not a stack the tests know: set it to"
            f" {' or '.join(STACK_KINDS)} (or unset it for {LOCAL})"
        )
    return kind


@contextlib.contextmanager
def ensure_stack(variables: Sequence[str] = ENDPOINT_VARIABLES) -> Iterator[dict[str, str]]:
    """The endpoints `variables` name, from the environment; a variable given always wins.

    When one is missing, `INVALIDATOR_TEST_STACK` says what supplies it (set in os.environ too):
    `local` starts deploy/local/stack.sh, which stays up afterwards for the next run;
    `containers` starts the containers of the missing services, which are removed on exit (and
    the variables they supplied restored).
    """
    kind = stack_kind()
    given = {name: os.environ[name] for name in variables if os.environ.get(name)}
    if len(given) == len(variables):
        yield given
        return
    if kind == LOCAL:
        started = start_local_stack()
        endpoints = {name: given.get(name) or started[name] for name in variables}
        os.environ.update(endpoints)
        yield endpoints
        return
    # Imported here: containers.py imports this module.
    from tests.integration.containers import container_stack  # noqa: PLC0415

    missing = [name for name in variables if name not in given]
    with container_stack(missing) as started, _environment(started):
        yield {**given, **started}


@contextlib.contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    """`variables` set in os.environ, restored to what they were on exit."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def start_local_stack(
    *options: str, env: dict[str, str] | None = None, timeout_s: float = 600
) -> dict[str, str]:
    """Run `stack.sh up` (it starts what is not running) and return the endpoints it prints.

    options: arguments after `up` (e.g. `--brokers`, `3`).
    env: variables over this process's environment (STACK_DIR, ports).
    timeout_s: how long `up` may take.
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
            f"{STACK_SCRIPT} up failed (exit {result.returncode}):\n{result.stderr[-4000:]}"
        )
    endpoints = {}
    for line in result.stdout.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            endpoints[name] = shlex.split(value)[0] if value else ""
    missing = [name for name in ENDPOINT_VARIABLES if not endpoints.get(name)]
    if missing:
        raise StackUnavailableError(f"{STACK_SCRIPT} up printed no {', '.join(missing)}")
    return endpoints


def stack_dir() -> Path:
    """Where the local stack keeps its data, logs and pid files (`STACK_DIR`, as stack.sh)."""
    return Path(os.environ.get("STACK_DIR", REPO / ".stack"))


def local_redis_pid(name: str) -> int:
    """The pid of the local stack's Redis `name` (`eu`, `us-<port>`).

    Fault tests that stop or freeze a server need the local stack; with endpoints given in the
    environment they fail here, naming the file they looked for.
    """
    pid_file = stack_dir() / "run" / f"redis-{name}.pid"
    if not pid_file.is_file():
        raise StackUnavailableError(
            f"{pid_file} not found: this test freezes or restarts the local stack's redis-{name}"
            f" (unset {', '.join(ENDPOINT_VARIABLES)} and run it with {STACK_VARIABLE}={LOCAL}"
            " to let the tests start it)"
        )
    return int(pid_file.read_text().strip())


def local_redis_config(name: str) -> Path:
    """The redis.conf stack.sh started the local stack's Redis `name` with."""
    return stack_dir() / "redis" / name / "redis.conf"
