"""Debezium on the local stack's Kafka Connect worker for tests (`stack.sh up --debezium`): the
worker's REST API, an outbox connector of a test's own (its own slot) on a test's database,
SIGKILL and restart of the worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from bench.stack import StackUnavailableError, stack_dir, start_local_stack
from producers.outbox.debezium import DebeziumSettings, connector_config
from tests.integration.stack import CONTAINERS, stack_kind
from tests.waiting import wait_until

CONNECT_URL_VARIABLE = "DEBEZIUM_CONNECT_URL"
STREAMING_WITHIN_S = 90.0
"""From the connector's creation to its slot streaming (the worker is up; first use loads the
connector's classes, a few seconds on an idle host)."""


def connect_url() -> str:
    """`DEBEZIUM_CONNECT_URL` when given, else the worker `stack.sh up --debezium` starts (with
    whatever of the stack is down); a StackUnavailableError when it cannot: tests fail, never
    skip."""
    given = os.environ.get(CONNECT_URL_VARIABLE)
    if given:
        return given
    if stack_kind() == CONTAINERS:
        # The local worker would stream from the local PostgreSQL, not the containers' one.
        raise StackUnavailableError(
            f"the Debezium tests need a Kafka Connect worker with Debezium on the tests'"
            f" PostgreSQL: set {CONNECT_URL_VARIABLE} (no container provides one)"
        )
    try:
        endpoints = start_local_stack("--debezium", timeout_s=900)
    except Exception as error:
        raise StackUnavailableError(f"no Kafka Connect worker with Debezium: {error}") from error
    url = endpoints.get(CONNECT_URL_VARIABLE)
    if not url:
        raise StackUnavailableError(f"stack.sh up --debezium printed no {CONNECT_URL_VARIABLE}")
    return url


@dataclass(frozen=True)
class ConnectWorker:
    """A Kafka Connect worker's REST API."""

    url: str

    async def request(self, method: str, path: str, body: object = None) -> Any:
        """The JSON answer of `method path` (None when empty); an HTTPError on a failure."""

        def call() -> Any:
            data = None if body is None else json.dumps(body).encode()
            request = urllib.request.Request(
                f"{self.url}{path}",
                data=data,
                method=method,
                headers={"Content-Type": "application/json", "Accept": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                text = answer.read()
            return json.loads(text) if text else None

        return await asyncio.to_thread(call)

    async def put_connector(self, config: dict[str, str]) -> None:
        """Create the connector `config["name"]`, or update it."""
        await self.request("PUT", f"/connectors/{config['name']}/config", config)

    async def delete_connector(self, name: str) -> None:
        """Delete the connector (its task stops; its slot stays)."""
        with contextlib.suppress(urllib.error.HTTPError):  # already gone (a restarted worker)
            await self.request("DELETE", f"/connectors/{name}")

    async def task_states(self, name: str) -> list[str]:
        """Its tasks' states (RUNNING, FAILED...); empty while it has none or is unknown."""
        try:
            status = await self.request("GET", f"/connectors/{name}/status")
        except (urllib.error.URLError, ConnectionError):
            return []
        failed = [task for task in status["tasks"] if task["state"] == "FAILED"]
        if failed:
            raise AssertionError(f"connector {name}'s task failed: {failed[0].get('trace')}")
        return [str(task["state"]) for task in status["tasks"]]


async def slot_active(database_url: str, slot: str) -> bool:
    """Whether the replication slot exists and a walsender streams from it."""
    connection = await _connect(database_url)
    try:
        active = await connection.fetchval(
            "SELECT active FROM pg_replication_slots WHERE slot_name = $1", slot
        )
    finally:
        await connection.close()
    return bool(active)


async def drop_slot(database_url: str, slot: str, *, within: float = 60.0) -> None:
    """Drop the slot once no walsender holds it (a slot left behind keeps WAL forever, and its
    database cannot be dropped)."""

    async def released() -> bool:
        connection = await _connect(database_url)
        try:
            return not await connection.fetchval(
                "SELECT coalesce(bool_or(active), false) FROM pg_replication_slots"
                " WHERE slot_name = $1",
                slot,
            )
        finally:
            await connection.close()

    await wait_until(released, within=within, what=f"slot {slot} released", interval=0.2)
    connection = await _connect(database_url)
    try:
        await connection.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE slot_name = $1",
            slot,
        )
    finally:
        await connection.close()


async def execute(database_url: str, statement: str) -> Any:
    """Run one statement on its own connection; its first value."""
    connection = await _connect(database_url)
    try:
        return await connection.fetchval(statement)
    finally:
        await connection.close()


async def _connect(database_url: str) -> asyncpg.Connection:
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    return await asyncpg.connect(dsn, timeout=10)


async def wait_streaming(
    worker: ConnectWorker, settings: DebeziumSettings, *, within: float = STREAMING_WITHIN_S
) -> None:
    """Until the connector's task runs and its slot streams: a row committed from then on is
    published (with snapshot.mode=no_data, none committed before the slot existed)."""

    async def streaming() -> bool:
        states = await worker.task_states(settings.name)
        return states == ["RUNNING"] and await slot_active(
            settings.database_url, settings.slot_name
        )

    await wait_until(
        streaming, within=within, what=f"connector {settings.name} streaming", interval=0.2
    )


def own_connector_settings(database_url: str, *, route_topic_prefix: str = "") -> DebeziumSettings:
    """The settings of a connector of a test's own on `database_url` (its name and slot)."""
    run = uuid.uuid4().hex[:10]
    return DebeziumSettings(
        database_url=database_url,
        name=f"outbox-test-{run}",
        slot_name=f"dbz_test_{run}",
        route_topic_prefix=route_topic_prefix,
    )


@contextlib.asynccontextmanager
async def outbox_connector(
    worker: ConnectWorker,
    database_url: str,
    *,
    route_topic_prefix: str = "",
    settings: DebeziumSettings | None = None,
) -> AsyncIterator[DebeziumSettings]:
    """A Debezium outbox connector of this test on `database_url` (its outbox table must exist),
    streaming when the block starts; deleted, and its slot dropped, when it ends.

    settings: the connector's (`own_connector_settings`), when the test made its slot first.
    """
    settings = settings or own_connector_settings(
        database_url, route_topic_prefix=route_topic_prefix
    )
    started = time.monotonic()
    await worker.put_connector(connector_config(settings))
    try:
        await wait_streaming(worker, settings)
        print(f"connector {settings.name} streaming after {time.monotonic() - started:.1f}s")
        yield settings
    finally:
        await worker.delete_connector(settings.name)
        await drop_slot(database_url, settings.slot_name)


class LocalConnect:
    """The local stack's Connect worker as a process (`run/connect.pid`): SIGKILL it, start it
    again with `stack.sh up --debezium`."""

    def __init__(self) -> None:
        self.pid_file = stack_dir() / "run" / "connect.pid"
        if not self.pid_file.is_file():
            raise StackUnavailableError(
                f"{self.pid_file} not found: this test kills the local stack's Connect worker"
                f" (unset {CONNECT_URL_VARIABLE} to let the tests start it)"
            )

    def pid(self) -> int | None:
        """The worker's pid while it runs."""
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def kill(self) -> None:
        """SIGKILL the worker."""
        pid = self.pid()
        assert pid is not None, f"the Connect worker is not running ({self.pid_file})"
        os.kill(pid, signal.SIGKILL)

    async def start_again(self) -> None:
        """Once the killed process is gone, start the worker again and wait until it answers."""
        await asyncio.to_thread(start_local_stack, "--debezium", timeout_s=300)
