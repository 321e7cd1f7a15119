"""deploy/local/stack.sh refuses, before starting anything, ports the cluster bus would hit,
runs PostgreSQL with the outbox database like its other services, and comes up from a clone in a
directory closed to everyone else. These tests run the script itself, whatever
INVALIDATOR_TEST_STACK says."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from bench.stack import REPO, STACK_SCRIPT, kafka_libs_dir, stack_dir, start_local_stack
from tests.integration.stack import CONTAINERS, stack_kind
from tests.service_guard import STACK_PORT_DEFAULTS

POSTGRES_PORT = int(os.environ.get("POSTGRES_PORT", "15432"))
CLONE_PORT_SHIFT = 400
"""A clone's stack runs on the test stack's ports + this: clear of them, of their cluster bus
ports (+ 10000) and of the 3-broker cluster of tests/faults (Kafka's ports + 2 to + 7)."""


def _stack(
    *command: str, tmp_path: Path | None = None, **ports: int
) -> subprocess.CompletedProcess[str]:
    """Run stack.sh `command`: on a stack under tmp_path, or on the local stack when None."""
    env = {
        **os.environ,
        **({"STACK_DIR": str(tmp_path / "stack")} if tmp_path else {}),
        **{name: str(port) for name, port in ports.items()},
    }
    return subprocess.run(
        ["bash", str(STACK_SCRIPT), *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_bus_port_that_is_another_services_port_is_refused(tmp_path: Path) -> None:
    result = _stack("env", tmp_path=tmp_path, REDIS_US_PORT=27001, REDIS_EU_PORT=37002)
    assert result.returncode == 2
    assert "cluster bus port 37002 (client port + 10000)" in result.stderr


def test_a_bus_port_in_use_stops_up_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        bus = taken.getsockname()[1]
        with socket.socket() as free:  # six free client ports below it are very likely
            free.bind(("127.0.0.1", 0))
            spare = free.getsockname()[1]
        ports = {
            "REDIS_US_PORT": bus - 10000,
            "KAFKA_PORT": spare,
            "KAFKA_CONTROLLER_PORT": spare + 1,
            "REDIS_EU_PORT": spare + 2,
        }
        try:
            result = _stack("up", tmp_path=tmp_path, **ports)
        finally:
            _stack("down", tmp_path=tmp_path, **ports)  # should there be anything to stop
    assert result.returncode == 2, result.stderr
    assert f"cluster bus port {bus} (client port + 10000)" in result.stderr
    assert "starting" not in result.stderr
    assert not (tmp_path / "stack" / "kafka" / "server.properties").exists()


def test_a_postgres_port_that_is_another_services_port_is_refused(tmp_path: Path) -> None:
    result = _stack("env", tmp_path=tmp_path, REDIS_EU_PORT=37432, POSTGRES_PORT=37432)
    assert result.returncode == 2
    assert "POSTGRES_PORT=37432 is used twice" in result.stderr


def test_env_names_the_outbox_database_on_postgres_port(tmp_path: Path) -> None:
    result = _stack("env", tmp_path=tmp_path, POSTGRES_PORT=37433)
    assert result.returncode == 0, result.stderr
    assert (
        "export OUTBOX_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:37433/outbox\n"
        in result.stdout
    )


def test_a_connect_port_that_is_another_services_port_is_refused(tmp_path: Path) -> None:
    result = _stack("env", "--debezium", tmp_path=tmp_path, POSTGRES_PORT=37434, CONNECT_PORT=37434)
    assert result.returncode == 2
    assert "CONNECT_PORT=37434 is also another service's port" in result.stderr


def test_env_debezium_names_the_connect_worker(tmp_path: Path) -> None:
    result = _stack("env", "--debezium", tmp_path=tmp_path, CONNECT_PORT=37435)
    assert result.returncode == 0, result.stderr
    assert "export DEBEZIUM_CONNECT_URL=http://127.0.0.1:37435\n" in result.stdout


def test_a_secure_port_that_is_another_services_port_is_refused(tmp_path: Path) -> None:
    result = _stack("env", "--secure", tmp_path=tmp_path, KAFKA_PORT=37436, SECURE_KAFKA_PORT=37436)
    assert result.returncode == 2
    assert "SECURE_KAFKA_PORT=37436 is also another service's port" in result.stderr


def test_env_secure_prints_where_each_password_is_never_a_password(tmp_path: Path) -> None:
    result = _stack("env", "--secure", tmp_path=tmp_path, SECURE_KAFKA_PORT=37437)
    assert result.returncode == 0, result.stderr
    secrets = tmp_path / "stack" / "secure" / "secrets"
    assert "export INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:37437\n" in result.stdout
    assert "export INVALIDATOR_KAFKA__SECURITY_PROTOCOL=SASL_SSL\n" in result.stdout
    assert f'export OUTBOX_KAFKA__SASL_PASSWORD="$(cat {secrets}/kafka-relay)"\n' in result.stdout


@pytest.fixture(scope="module")
def local_stack() -> Iterator[dict[str, str]]:
    """The endpoints `stack.sh up` prints for the local stack (started if need be).

    A run whose services are containers stops the local stack again afterwards, unless it was
    up before: such a run leaves no local services behind.
    """
    stop_afterwards = stack_kind() == CONTAINERS and _stack("status").returncode != 0
    try:
        yield start_local_stack()
    finally:
        if stop_afterwards:
            stopped = _stack("down")
            assert stopped.returncode == 0, stopped.stderr


def test_up_prints_the_outbox_database_url(local_stack: dict[str, str]) -> None:
    assert local_stack["OUTBOX_DATABASE_URL"] == (
        f"postgresql+asyncpg://postgres@127.0.0.1:{POSTGRES_PORT}/outbox"
    )


def test_status_has_a_line_for_postgres(local_stack: dict[str, str]) -> None:
    lines = _stack("status").stdout.splitlines()
    postgres = [line for line in lines if line.startswith("postgres ")]
    assert len(postgres) == 1, lines
    assert postgres[0].startswith(f"postgres  up   127.0.0.1:{POSTGRES_PORT} database outbox pid ")


def test_logs_postgres_shows_the_server_log(local_stack: dict[str, str]) -> None:
    result = _stack("logs", "postgres")
    assert result.returncode == 0, result.stderr
    shown = result.stdout.splitlines()
    logged = (stack_dir() / "logs" / "postgres.log").read_text().splitlines()
    assert shown and set(shown) <= set(logged)


async def test_the_outbox_database_answers_through_asyncpg(local_stack: dict[str, str]) -> None:
    dsn = local_stack["OUTBOX_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://", 1)
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        assert await connection.fetchval("SELECT 1") == 1
        assert await connection.fetchval("SELECT current_database()") == "outbox"
    finally:
        await connection.close()


@pytest.mark.long
@pytest.mark.timeout(480)
def test_a_clone_in_a_directory_closed_to_others_brings_the_whole_stack_up(tmp_path: Path) -> None:
    """`git clone` into a 0700 directory (as under /root or `mktemp -d`), then the clone's own
    `stack.sh up` on ports of its own: every service answers, PostgreSQL included, although its
    server's user (postgres, when root) cannot enter the clone. Stopped and purged afterwards."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git work tree: nothing to clone")
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    clone = closed / "clone"
    subprocess.run(
        ["git", "clone", "--quiet", str(REPO), str(clone)], check=True, capture_output=True
    )
    env = {name: value for name, value in os.environ.items() if name != "STACK_DIR"}
    env["KAFKA_LIBS_DIR"] = str(kafka_libs_dir().resolve())  # the jars, not fetched again
    for name, default in STACK_PORT_DEFAULTS.items():
        env[name] = str(int(os.environ.get(name, default)) + CLONE_PORT_SHIFT)

    def clone_stack(*command: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(clone / "deploy" / "local" / "stack.sh"), *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    postgres_log = clone / ".stack" / "logs" / "postgres.log"
    try:
        up = clone_stack("up", timeout_s=240)
        assert up.returncode == 0, up.stderr[-4000:]
        assert f"@127.0.0.1:{env['POSTGRES_PORT']}/outbox" in up.stdout
        status = clone_stack("status", timeout_s=60)
        assert status.returncode == 0, status.stdout + status.stderr
        assert f"postgres  up   127.0.0.1:{env['POSTGRES_PORT']} database outbox" in status.stdout
        postgres_dir = postgres_log.resolve().parent
        if os.geteuid() == 0:  # the server runs as postgres: its data lives outside the clone
            assert not postgres_dir.is_relative_to(closed), postgres_dir
    finally:
        down = clone_stack("down", "--purge", timeout_s=180)
        shutil.rmtree(closed, ignore_errors=True)
    assert down.returncode == 0, down.stderr[-4000:]
    assert not postgres_dir.exists(), f"down --purge left {postgres_dir}"
