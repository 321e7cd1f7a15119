"""Where the integration tests' services come from (`INVALIDATOR_TEST_STACK`) and how the
containers are configured, checked without starting any service."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.stack import ENDPOINT_VARIABLES, STACK_SCRIPT, StackUnavailableError
from tests.integration import stack
from tests.integration.containers import (
    BROKER_PROPERTIES,
    DATABASE_VARIABLE,
    KAFKA_VARIABLE,
    REGIONS_VARIABLE,
    PortRange,
    StackPlan,
    kafka_spec,
    port_free,
    postgres_spec,
    read_topics,
    redis_spec,
    regions_json,
)
from tests.integration.stack import ensure_test_stack, stack_kind

GIVEN = {
    KAFKA_VARIABLE: "127.0.0.1:1",
    REGIONS_VARIABLE: regions_json(2, 3),
    DATABASE_VARIABLE: "postgresql+asyncpg://postgres@127.0.0.1:4/outbox",
}
NO_ENGINE = "unix:///nonexistent/docker.sock"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        *ENDPOINT_VARIABLES,
        "INVALIDATOR_TEST_STACK",
        "INVALIDATOR_TEST_PORTS",
        "KAFKA_IMAGE",
        "REDIS_IMAGE",
        "POSTGRES_IMAGE",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def no_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting the local stack fails the test (these tests must not reach it)."""

    def refuse(*_: object, **__: object) -> dict[str, str]:
        raise AssertionError("the local stack was started")

    monkeypatch.setattr(stack, "start_local_stack", refuse)


@pytest.mark.parametrize("value", [None, "", "local"])
def test_the_stack_is_local_by_default(value: str | None) -> None:
    assert stack_kind({} if value is None else {"INVALIDATOR_TEST_STACK": value}) == "local"


def test_containers_is_a_stack() -> None:
    assert stack_kind({"INVALIDATOR_TEST_STACK": "containers"}) == "containers"


@pytest.mark.parametrize("value", ["docker", "Containers", "compose"])
def test_another_stack_is_refused_naming_the_variable_and_the_choices(value: str) -> None:
    with pytest.raises(StackUnavailableError) as refused:
        stack_kind({"INVALIDATOR_TEST_STACK": value})
    message = str(refused.value)
    assert f"INVALIDATOR_TEST_STACK={value!r}" in message
    assert "local or containers" in message


@pytest.mark.usefixtures("no_local_stack")
def test_the_test_stack_refuses_an_unknown_stack_before_starting_anything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INVALIDATOR_TEST_STACK", "podman")
    with (
        pytest.raises(StackUnavailableError, match="INVALIDATOR_TEST_STACK='podman'"),
        ensure_test_stack(),
    ):
        pass


@pytest.mark.usefixtures("no_local_stack")
def test_given_endpoints_win_over_containers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVALIDATOR_TEST_STACK", "containers")
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)  # no engine is asked
    for name, value in GIVEN.items():
        monkeypatch.setenv(name, value)
    with ensure_test_stack() as endpoints:
        assert endpoints == GIVEN


@pytest.mark.usefixtures("no_local_stack")
def test_containers_without_an_engine_fail_naming_docker_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INVALIDATOR_TEST_STACK", "containers")
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    monkeypatch.setenv(KAFKA_VARIABLE, GIVEN[KAFKA_VARIABLE])
    with pytest.raises(StackUnavailableError) as refused, ensure_test_stack():
        pass
    assert f"DOCKER_HOST={NO_ENGINE} is not answering" in str(refused.value)
    assert os.environ.get(REGIONS_VARIABLE) is None  # nothing half-set


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, PortRange(28000, 28999)),
        ("28000-28999", PortRange(28000, 28999)),
        (" 30000 - 30099 ", PortRange(30000, 30099)),
    ],
)
def test_the_port_range(value: str | None, expected: PortRange) -> None:
    environ = {} if value is None else {"INVALIDATOR_TEST_PORTS": value}
    assert PortRange.from_environment(environ) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("28000", "is not a port range: write FIRST-LAST"),
        ("a-b", "is not a port range"),
        ("29000-28000", "must run upwards"),
        ("50000-60000", "at most 55535 (a Redis Cluster node also listens on its port + 10000)"),
        ("80-90", "from 1024"),
    ],
)
def test_a_bad_port_range_is_refused_naming_the_variable(value: str, expected: str) -> None:
    with pytest.raises(StackUnavailableError) as refused:
        PortRange.from_environment({"INVALIDATOR_TEST_PORTS": value})
    assert f"INVALIDATOR_TEST_PORTS={value!r}" in str(refused.value)
    assert expected in str(refused.value)


@pytest.fixture
def four_free_ports() -> Iterator[tuple[int, list[socket.socket]]]:
    """A port p with p, p + 1 and their + 10000 free now, and a list to hold sockets in."""
    held: list[socket.socket] = []
    try:
        for first in range(20000, 29999, 7):
            if all(port_free(port) for port in (first, first + 1, first + 10000, first + 10001)):
                yield first, held
                return
        raise AssertionError("no four free ports to test with")
    finally:
        for sock in held:
            sock.close()


def _listen(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def test_picked_ports_are_free_distinct_and_taken(
    four_free_ports: tuple[int, list[socket.socket]],
) -> None:
    first, held = four_free_ports
    held.append(_listen(first))
    taken: set[int] = set()
    assert PortRange(first, first + 1).pick(1, taken=taken) == [first + 1]
    assert taken == {first + 1}
    with pytest.raises(StackUnavailableError, match=r"only 0 of the 1 free ports needed"):
        PortRange(first, first + 1).pick(1, taken=taken)


def test_a_cluster_node_needs_its_bus_port_free(
    four_free_ports: tuple[int, list[socket.socket]],
) -> None:
    first, held = four_free_ports
    held.append(_listen(first + 10000))
    taken: set[int] = set()
    assert PortRange(first, first + 1).pick(1, taken=taken, with_bus=True) == [first + 1]
    assert taken == {first + 1, first + 10001}
    with pytest.raises(StackUnavailableError, match=r"INVALIDATOR_TEST_PORTS=.*port \+ 10000"):
        PortRange(first, first).pick(1, taken=set(), with_bus=True)


def test_images_default_to_the_official_ones() -> None:
    assert kafka_spec(1, 2, environ={}).image == "apache/kafka:4.1.0"
    assert redis_spec("redis-eu", 3, environ={}).image == "redis:7"
    assert postgres_spec(4, environ={}).image == "postgres:15"


def test_images_are_settings() -> None:
    environ = {
        "KAFKA_IMAGE": "localhost/kafka:4.1.0",
        "REDIS_IMAGE": "localhost/redis:7",
        "POSTGRES_IMAGE": "localhost/postgres:15",
    }
    specs = [
        kafka_spec(1, 2, environ=environ),
        redis_spec("redis-eu", 3, environ=environ),
        postgres_spec(4, environ=environ),
    ]
    assert {spec.image_variable: spec.image for spec in specs} == environ


def test_the_broker_advertises_the_port_the_tests_connect_to() -> None:
    env = kafka_spec(28001, 28002, environ={}).env
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://127.0.0.1:28001"
    assert env["KAFKA_LISTENERS"] == "PLAINTEXT://127.0.0.1:28001,CONTROLLER://127.0.0.1:28002"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@127.0.0.1:28002"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS"] == "10"
    assert len(env["CLUSTER_ID"]) == 22  # 16 bytes, base64url without padding


def test_the_broker_has_the_local_stacks_settings() -> None:
    generated = STACK_SCRIPT.read_text()
    for name, value in BROKER_PROPERTIES.items():
        # stack.sh writes the replication settings of one node through ${rf} and ${isr}.
        assert f"{name}={value}" in generated or f"{name}=${{" in generated, name


def test_redis_nodes_are_cluster_nodes_on_their_port() -> None:
    node = redis_spec("redis-us-28010", 28010, environ={}, cluster=True)
    assert node.command is not None
    assert node.command[:5] == ["redis-server", "--port", "28010", "--bind", "127.0.0.1"]
    assert "--cluster-enabled" in node.command
    assert node.host_pids
    assert "--cluster-enabled" not in (redis_spec("redis-eu", 28011, environ={}).command or [])


def test_the_servers_a_fault_test_signals_share_the_hosts_pids() -> None:
    assert kafka_spec(28001, 28002, environ={}).host_pids
    assert redis_spec("redis-eu", 28011, environ={}).host_pids
    assert not postgres_spec(28012, environ={}).host_pids


def test_each_container_knows_the_port_it_serves_on() -> None:
    assert kafka_spec(28001, 28002, environ={}).port == 28001
    assert redis_spec("redis-us-28010", 28010, environ={}, cluster=True).port == 28010
    assert postgres_spec(28012, environ={}).port == 28012


@pytest.mark.parametrize("cluster", [False, True])
def test_a_redis_container_keeps_no_data_to_start_again_with(cluster: bool) -> None:
    command = redis_spec("redis", 28010, environ={}, cluster=cluster).command or []
    settings = dict(zip(command[1::2], command[2::2], strict=True))
    assert settings["--save"] == "" and settings["--appendonly"] == "no"
    assert settings["--rdb-del-sync-files"] == "yes"  # a replica's full sync leaves none


def test_regions_are_those_the_local_stack_prints(tmp_path: Path) -> None:
    ports = {"STACK_DIR": str(tmp_path), "REDIS_EU_PORT": "28100", "REDIS_US_PORT": "28200"}
    printed = subprocess.run(
        ["bash", str(STACK_SCRIPT), "env"],
        env={**os.environ, **ports},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    line = next(line for line in printed.splitlines() if REGIONS_VARIABLE in line)
    value = shlex.split(line.removeprefix(f"export {REGIONS_VARIABLE}="))[0]
    assert json.loads(regions_json(28100, 28200)) == json.loads(value)
    assert regions_json(28100, 28200) == value


def test_only_the_missing_services_are_planned() -> None:
    plan = StackPlan.for_variables([DATABASE_VARIABLE], PortRange(28000, 28999))
    assert plan.kafka is None and plan.redis_eu is None and plan.redis_us == ()
    assert [spec.role for spec in plan.specs({})] == ["postgres"]
    assert list(plan.endpoints()) == [DATABASE_VARIABLE]
    assert plan.endpoints()[DATABASE_VARIABLE] == (
        f"postgresql+asyncpg://postgres@127.0.0.1:{plan.postgres}/outbox"
    )


def test_the_regions_plan_is_eu_and_six_cluster_nodes_on_distinct_ports() -> None:
    plan = StackPlan.for_variables([REGIONS_VARIABLE, KAFKA_VARIABLE], PortRange(28000, 28999))
    assert plan.kafka is not None and plan.redis_eu is not None
    ports = [*plan.kafka, plan.redis_eu, *plan.redis_us]
    assert len(plan.redis_us) == 6
    assert len(set(ports)) == len(ports)
    assert all(28000 <= port <= 28999 for port in ports)
    assert {spec.role for spec in plan.specs({})} == {
        "kafka",
        "redis-eu",
        *(f"redis-us-{port}" for port in plan.redis_us),
    }


def test_topics_are_read_like_the_local_stack_reads_them(tmp_path: Path) -> None:
    topics = tmp_path / "topics.txt"
    topics.write_text("# name partitions\n\norders.events 6\ndead 3  # trailing\n#gone 1\n")
    assert read_topics(topics) == {"orders.events": 6, "dead": 3}
    assert set(read_topics()) >= {"orders.events", "companies.events"}
