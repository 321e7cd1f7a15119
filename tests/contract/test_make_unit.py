"""`make unit` runs the tests that need no service, and a test there that needs one fails."""

from __future__ import annotations

import os
import re
import socket

import pytest

from tests.service_guard import (
    REPO,
    SERVICE_FREE_DIRS,
    ServiceNeededError,
    is_service_free,
    service_ports,
)


def test_make_unit_runs_every_test_that_needs_no_service(service_guard: list[str]) -> None:
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^unit:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe is not None, "the Makefile has no unit target"
    assert sorted(re.findall(r"\btests/\w+", recipe.group(1))) == sorted(SERVICE_FREE_DIRS)
    # The guard is on in them (this file is one of their tests): a connection to a service's
    # port fails the test that makes it, here the Kafka broker's.
    assert is_service_free(REPO / "tests" / "contract" / "test_make_unit.py")
    kafka = int(os.environ.get("KAFKA_PORT") or 19092)
    assert kafka in service_ports(os.environ)
    with socket.socket() as client, pytest.raises(ServiceNeededError, match=f":{kafka}, a port"):
        client.connect(("127.0.0.1", kafka))
    assert service_guard == [f"127.0.0.1:{kafka}"]
    service_guard.clear()  # refused on purpose: this test needs no service either


def test_the_service_ports_follow_the_stack_scripts_variables() -> None:
    shifted = {
        "KAFKA_PORT": "19392",
        "REDIS_US_PORT": "17301",
        "INVALIDATOR_REGIONS": '{"eu":[{"name":"eu","url":"redis://127.0.0.1:26379/0"}]}',
        "OUTBOX_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:25432/outbox",
    }
    ports = service_ports(shifted)
    assert {19392, *range(17301, 17307), 26379, 25432, 16379, 15432} <= ports
    assert 19092 not in ports and 17001 not in ports
