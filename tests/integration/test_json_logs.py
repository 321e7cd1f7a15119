"""`invalidator --log-format json run` as a process: every line it writes is a JSON object
carrying its region and group; the partitions it was assigned and where it starts on them. The
outbox relay's `--log-format json` likewise."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

from invalidator import InvalidatorSettings
from tests.faults.processes import exited, kill_if_running, spawn, stop_process
from tests.integration.cli import spawn_cli
from tests.integration.databases import sqlite_url
from tests.waiting import wait_until

_PARTITION = re.compile(r"[\w.-]+\[\d+\]")


def _lines(log: Path) -> list[dict[str, Any]]:
    """Every line of `log` parsed as JSON (fails on a line that is not)."""
    return [json.loads(line) for line in log.read_text().splitlines()]


async def test_every_line_is_json_with_region_group_and_partitions(
    settings: InvalidatorSettings, tmp_path: Path
) -> None:
    log = tmp_path / "run.log"
    env = {"INVALIDATOR_GROUP_PREFIX": settings.group_prefix, "INVALIDATOR_START_FROM": "latest"}
    process = spawn_cli("--log-format", "json", "run", "--region", "eu", env=env, output=log)
    try:

        async def assigned() -> bool:
            return ": assigned " in log.read_text()

        await wait_until(assigned, within=90, what=f"the assigned line in {log}")
        status = await stop_process(process, signal.SIGTERM, within=60, what="the exit")
    finally:
        kill_if_running(process)
    assert status == 0, log.read_text()[-3000:]
    lines = _lines(log)
    group = settings.group_id("eu")
    assert all(line["region"] == "eu" and line["group"] == group for line in lines), lines
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines), lines
    (assignment,) = [line for line in lines if ": assigned " in line["message"]]
    partitions = set(assignment["partitions"])
    assert partitions == set(_PARTITION.findall(assignment["message"])) != set(), assignment
    (start,) = [line for line in lines if line["message"].startswith("never committed on ")]
    assert set(start["offsets"]) == partitions, start
    assert any(line["message"].endswith(" stopped") for line in lines), lines


async def test_the_outbox_relay_writes_json_lines(
    settings: InvalidatorSettings, tmp_path: Path
) -> None:
    log = tmp_path / "relay.log"
    env = {
        "OUTBOX_DATABASE_URL": sqlite_url(tmp_path / "outbox.db"),
        "OUTBOX_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
    }
    outbox = ["-m", "producers.outbox.cli", "--log-format", "json"]
    init_log = tmp_path / "init.log"  # its stdout says the table is ready: not a log line
    init = spawn([*outbox, "init"], settings, init_log, env=env)
    relay = None
    try:
        await wait_until(lambda: exited(init), within=60, what=f"outbox init ({init_log})")
        assert init.wait() == 0, init_log.read_text()
        relay = spawn([*outbox, "relay"], settings, log, env=env)

        async def started() -> bool:
            return "outbox relay started" in log.read_text()

        await wait_until(started, within=90, what=f"the relay's start in {log}")
        status = await stop_process(relay, signal.SIGTERM, within=60, what="the relay's exit")
    finally:
        kill_if_running(init, relay)
    assert status == 0, log.read_text()[-3000:]
    messages = [line["message"] for line in _lines(log) if line["logger"] == "producers.outbox"]
    assert messages[0] == "outbox relay started", messages
    assert messages[-1].startswith("outbox relay stopped: "), messages
