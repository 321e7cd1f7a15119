"""Where the integration tests' services come from: endpoints from the environment, else the
local stack (`bench.stack`, deploy/local/stack.sh) or containers (`INVALIDATOR_TEST_STACK`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence

from bench.stack import ENDPOINT_VARIABLES, StackUnavailableError, start_local_stack

STACK_VARIABLE = "INVALIDATOR_TEST_STACK"
"""Where the services the environment does not name come from: one of STACK_KINDS."""
LOCAL = "local"
CONTAINERS = "containers"
STACK_KINDS = (LOCAL, CONTAINERS)
"""`local`: deploy/local/stack.sh (the default); `containers`: tests/integration/containers.py."""


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
def ensure_test_stack(variables: Sequence[str] = ENDPOINT_VARIABLES) -> Iterator[dict[str, str]]:
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
    # Imported here: only a containers run loads testcontainers and the Docker client.
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
