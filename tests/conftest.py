"""Shared test plugins, the example catalogue, and the guard of the service-free tests. Helpers
that tests import live in helper modules (`tests/waiting.py`, `tests/service_guard.py`,
`tests/unit/loop_fakes.py`, `tests/integration/*.py` other than tests), never here."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from contracts.example_orders import EXAMPLE_CATALOGUE
from tests.service_guard import is_service_free, service_ports, services_refused

# The tests run the example domain, chosen here (the invalidator has no default catalogue): every
# settings object read in a test, and every invalidator process a test starts, loads it.
os.environ["INVALIDATOR_CATALOGUE"] = EXAMPLE_CATALOGUE

pytest_plugins = ["contracts.pytest_plugin", "pytester"]


@pytest.fixture(autouse=True)
def service_guard(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """In the directories `make unit` runs, no connection to a service's port: such a test
    fails (ServiceNeededError). Yields the connections refused so far (elsewhere, none)."""
    if not is_service_free(request.node.path):
        yield []
        return
    with services_refused(service_ports(os.environ)) as refused:
        yield refused
    connected = ", ".join(sorted(set(refused)))
    assert refused == [], f"this test needs a service: it connected to {connected}"
