"""Ports for the servers a test starts on its own, from a fixed range (`INVALIDATOR_TEST_PORTS`,
31000-33999 unless set): away from the local stack's ports and from the kernel's ephemeral range,
where a client's outgoing connection could take a port between the choice and the server's
bind."""

from __future__ import annotations

import os
import random
import socket

PORTS_VARIABLE = "INVALIDATOR_TEST_PORTS"
DEFAULT_PORTS = "31000-33999"


def port_range() -> range:
    """The range of `INVALIDATOR_TEST_PORTS` (`first-last`, both included)."""
    first, _, last = (os.environ.get(PORTS_VARIABLE) or DEFAULT_PORTS).partition("-")
    return range(int(first), int(last) + 1)


def free_test_port() -> int:
    """A port of the range that nothing listens on right now (tried at random)."""
    candidates = list(port_range())
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS_VARIABLE}={port_range()}")
