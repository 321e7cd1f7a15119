"""The tests `make unit` runs need no service: in them, a connection to a port of the local
stack's services (or of an endpoint the environment names) is refused before it is made, and the
test fails even when the client swallows the error."""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SERVICE_FREE_DIRS = ("tests/contract", "tests/unit")
"""The directories `make unit` runs, and the only ones: the Makefile's unit target names these."""

STACK_PORT_DEFAULTS = {
    "KAFKA_PORT": 19092,
    "KAFKA_CONTROLLER_PORT": 19093,
    "REDIS_EU_PORT": 16379,
    "REDIS_US_PORT": 17001,
    "POSTGRES_PORT": 15432,
}
"""deploy/local/stack.sh's port variables and their defaults (`REDIS_US_PORT`: the first of the
us cluster's REDIS_US_NODES ports)."""
REDIS_US_NODES = 6
MIRRORED_PORT_DEFAULTS = {
    "MIRROR_EU_KAFKA_PORT": 23092,
    "MIRROR_EU_CONTROLLER_PORT": 23093,
    "MIRROR_US_KAFKA_PORT": 24092,
    "MIRROR_US_CONTROLLER_PORT": 24093,
    "MIRROR_LINK_CONTROL_PORT": 23099,
}
"""Those of its mirrored topology (`up --mirrored`)."""
DEBEZIUM_PORT_DEFAULTS = {"CONNECT_PORT": 18083}
"""The Kafka Connect worker's REST port (`stack.sh up --debezium`)."""
SECURE_PORT_DEFAULTS = {
    "SECURE_KAFKA_PORT": 19192,
    "SECURE_KAFKA_CONTROLLER_PORT": 19193,
    "SECURE_REDIS_EU_PORT": 16479,
    "SECURE_REDIS_US_PORT": 17101,
    "SECURE_POSTGRES_PORT": 15532,
    "SECURE_MIRROR_US_KAFKA_PORT": 19292,
    "SECURE_MIRROR_US_CONTROLLER_PORT": 19293,
}
"""Those of the secure profile (`stack.sh up --secure`; `SECURE_REDIS_US_PORT`: the first of its
us cluster's REDIS_US_NODES ports; `SECURE_MIRROR_US_*`: its mirrored topology's us cluster,
`up --secure --mirrored`)."""
ENDPOINT_VARIABLES = (
    "INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS",
    "INVALIDATOR_REGIONS",
    "OUTBOX_DATABASE_URL",
    "MIRROR_KAFKA_EU",
    "MIRROR_KAFKA_US",
)


class ServiceNeededError(AssertionError):
    """A test of a service-free directory connected to a service's port."""


def is_service_free(path: Path) -> bool:
    """Whether the test file `path` lies in a directory `make unit` runs."""
    return any(path.is_relative_to(REPO / directory) for directory in SERVICE_FREE_DIRS)


def service_ports(environ: Mapping[str, str]) -> set[int]:
    """The local stack's ports, as stack.sh would use them in `environ`, and every port the
    endpoint variables of `environ` name."""
    defaults = {
        **STACK_PORT_DEFAULTS,
        **MIRRORED_PORT_DEFAULTS,
        **DEBEZIUM_PORT_DEFAULTS,
        **SECURE_PORT_DEFAULTS,
    }
    ports = {int(environ.get(name) or default) for name, default in defaults.items()}
    for first in ("REDIS_US_PORT", "SECURE_REDIS_US_PORT"):
        us_first = int(environ.get(first) or defaults[first])
        ports.update(range(us_first, us_first + REDIS_US_NODES))
    for name in ENDPOINT_VARIABLES:
        ports.update(int(port) for port in re.findall(r":(\d{2,5})\b", environ.get(name, "")))
    return ports


@contextlib.contextmanager
def services_refused(ports: set[int]) -> Iterator[list[str]]:
    """Within: a socket connecting to one of `ports` raises ServiceNeededError instead. Yields
    the refused connections, in words (a client may catch the error and go on)."""
    refused: list[str] = []
    original_connect, original_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(address: Any) -> None:
        if isinstance(address, tuple) and len(address) >= 2 and address[1] in ports:
            refused.append(f"{address[0]}:{address[1]}")
            raise ServiceNeededError(
                f"a test that needs no service connected to {address[0]}:{address[1]}, a port"
                f" of the stack's services: move it out of {' and '.join(SERVICE_FREE_DIRS)}"
            )

    def connect(self: socket.SocketType, address: Any) -> None:
        check(address)
        original_connect(self, address)

    def connect_ex(self: socket.SocketType, address: Any) -> int:
        check(address)
        return original_connect_ex(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    try:
        yield refused
    finally:
        socket.socket.connect = original_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = original_connect_ex  # type: ignore[method-assign]
