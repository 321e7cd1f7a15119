"""Debezium on the local stack's Kafka Connect worker for tests (`stack.sh up --debezium`): an
outbox connector of a test's own (its own slot) on a test's database, SIGKILL and restart of the
worker. The worker's REST API and the slot helpers are the benchmark's (bench.connect_worker)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from bench.connect_worker import (
    CONNECT_URL_VARIABLE,
    ConnectWorker,
    drop_slot,
    slot_active,
    wait_streaming,
)
from bench.stack import StackUnavailableError, stack_dir, start_local_stack
from producers.outbox.debezium import DebeziumSettings, connector_config
from tests.integration.stack import CONTAINERS, stack_kind

__all__ = [
    "ConnectWorker",
    "LocalConnect",
    "connect_url",
    "drop_slot",
    "execute",
    "outbox_connector",
    "own_connector_settings",
    "slot_active",
    "wait_streaming",
]


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
