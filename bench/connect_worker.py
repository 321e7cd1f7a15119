"""A Kafka Connect worker's REST API, and a Debezium outbox connector of a run's own on it (its
own replication slot), streaming while a block runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from bench.stack import start_local_stack
from producers.outbox.debezium import DebeziumSettings, connector_config

CONNECT_URL_VARIABLE = "DEBEZIUM_CONNECT_URL"
STREAMING_WITHIN_S = 90.0
"""From the connector's creation to its slot streaming (first use loads its classes)."""
_LOOK_S = 0.2


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

    async def pause(self, name: str) -> None:
        """Pause the connector and wait until its tasks are paused (Debezium's slot keeps the
        changes meanwhile)."""
        await self.request("PUT", f"/connectors/{name}/pause")
        deadline = time.monotonic() + STREAMING_WITHIN_S
        while set(await self.task_states(name)) != {"PAUSED"}:
            if time.monotonic() > deadline:
                raise TimeoutError(f"connector {name} not paused after {STREAMING_WITHIN_S} s")
            await asyncio.sleep(_LOOK_S)

    async def resume(self, name: str) -> None:
        """Resume a paused connector (returns at once; its tasks start again)."""
        await self.request("PUT", f"/connectors/{name}/resume")

    async def task_states(self, name: str) -> list[str]:
        """Its tasks' states (RUNNING, FAILED...); empty while it has none or is unknown; a
        RuntimeError with the trace when one failed."""
        try:
            status = await self.request("GET", f"/connectors/{name}/status")
        except (urllib.error.URLError, ConnectionError):
            return []
        failed = [task for task in status["tasks"] if task["state"] == "FAILED"]
        if failed:
            raise RuntimeError(f"connector {name}'s task failed: {failed[0].get('trace')}")
        return [str(task["state"]) for task in status["tasks"]]


def local_worker() -> ConnectWorker:
    """`DEBEZIUM_CONNECT_URL`'s worker when given, else the one `stack.sh up --debezium` starts
    (with whatever of the stack is down)."""
    url = os.environ.get(CONNECT_URL_VARIABLE) or start_local_stack(
        "--debezium", timeout_s=900
    ).get(CONNECT_URL_VARIABLE)
    if not url:
        raise RuntimeError(f"stack.sh up --debezium printed no {CONNECT_URL_VARIABLE}")
    return ConnectWorker(url)


async def slot_active(database_url: str, slot: str) -> bool | None:
    """Whether a walsender streams from the slot (None: no such slot)."""
    connection = await _connect(database_url)
    try:
        active = await connection.fetchval(
            "SELECT active FROM pg_replication_slots WHERE slot_name = $1", slot
        )
    finally:
        await connection.close()
    return None if active is None else bool(active)


async def drop_slot(database_url: str, slot: str, *, within: float = 60.0) -> None:
    """Drop the slot once no walsender holds it (a slot left behind keeps WAL for ever, and its
    database cannot be dropped)."""
    deadline = time.monotonic() + within
    while await slot_active(database_url, slot):
        if time.monotonic() > deadline:
            raise TimeoutError(f"slot {slot} still held after {within} s")
        await asyncio.sleep(_LOOK_S)
    connection = await _connect(database_url)
    try:
        await connection.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE slot_name = $1",
            slot,
        )
    finally:
        await connection.close()


async def wait_streaming(
    worker: ConnectWorker, settings: DebeziumSettings, *, within: float = STREAMING_WITHIN_S
) -> None:
    """Until the connector's task runs and its slot streams: a row committed from then on is
    published (with snapshot.mode=no_data, none committed before the slot existed)."""
    deadline = time.monotonic() + within
    while not (
        await worker.task_states(settings.name) == ["RUNNING"]
        and await slot_active(settings.database_url, settings.slot_name)
    ):
        if time.monotonic() > deadline:
            raise TimeoutError(f"connector {settings.name} not streaming after {within} s")
        await asyncio.sleep(_LOOK_S)


@contextlib.asynccontextmanager
async def outbox_connector(
    worker: ConnectWorker, settings: DebeziumSettings
) -> AsyncIterator[DebeziumSettings]:
    """The connector of `settings` (its outbox table must exist), streaming when the block
    starts; deleted, and its slot dropped, when it ends."""
    await worker.put_connector(connector_config(settings))
    try:
        await wait_streaming(worker, settings)
        yield settings
    finally:
        await worker.delete_connector(settings.name)
        await drop_slot(settings.database_url, settings.slot_name)


async def _connect(database_url: str) -> asyncpg.Connection:
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    return await asyncpg.connect(dsn, timeout=10)
