"""deploy/local/stack.sh refuses, before starting anything, ports the cluster bus would hit."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from tests.integration.stack import STACK_SCRIPT


def _stack(command: str, tmp_path: Path, **ports: int) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "STACK_DIR": str(tmp_path / "stack"),
        **{name: str(port) for name, port in ports.items()},
    }
    return subprocess.run(
        ["bash", str(STACK_SCRIPT), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_bus_port_that_is_another_services_port_is_refused(tmp_path: Path) -> None:
    result = _stack("env", tmp_path, REDIS_US_PORT=27001, REDIS_EU_PORT=37002)
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
            result = _stack("up", tmp_path, **ports)
        finally:
            _stack("down", tmp_path, **ports)  # should there be anything to stop
    assert result.returncode == 2, result.stderr
    assert f"cluster bus port {bus} (client port + 10000)" in result.stderr
    assert "starting" not in result.stderr
    assert not (tmp_path / "stack" / "kafka" / "server.properties").exists()
