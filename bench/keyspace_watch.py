"""Seeing purges land as Redis reports them: keyspace notifications from every master.

Push, not polling: each master of each region publishes `__keyspace@0__:<key>` the moment a
watched key is written, so a landing is timestamped when the notification arrives, with no
polling round to wait for and no polling load on the machine under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from redis.asyncio import Redis

from contracts.connections import RedisTarget
from contracts.redis_clients import redis_client, redis_node_client

_CHANNEL_PREFIX = "__keyspace@0__:"


class KeyspaceWatch:
    """The monotonic time at which a key was written in every region (the latest of them)."""

    def __init__(self, targets: dict[str, RedisTarget], *, key_pattern: str) -> None:
        """targets: the target to watch in each region (every master of a Cluster).
        key_pattern: a glob of the keys to watch (a SUBSCRIBE pattern: keep it literal but
            for a trailing `*`).
        """
        self._targets = targets
        self._pattern = _CHANNEL_PREFIX + key_pattern
        self._seen: dict[str, dict[str, float]] = {}
        self._waiting: dict[str, asyncio.Future[float]] = {}
        self._connections: list[Any] = []
        self._listeners: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Turn on keyspace notifications for string writes and subscribe on every master."""
        for region, target in self._targets.items():
            for node in await _masters(target):
                await node.config_set("notify-keyspace-events", "K$")
                subscription = node.pubsub()
                await subscription.psubscribe(self._pattern)
                confirmed = await subscription.get_message(timeout=10)
                if confirmed is None or confirmed["type"] != "psubscribe":
                    raise RuntimeError(f"no PSUBSCRIBE confirmation from {region}: {confirmed}")
                self._connections += [subscription, node]
                self._listeners.append(asyncio.create_task(self._listen(region, subscription)))

    async def stop(self) -> None:
        """Unsubscribe and close."""
        for task in self._listeners:
            task.cancel()
        for task in self._listeners:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for connection in self._connections:
            await connection.aclose()

    async def landed(self, key: str, *, timeout_s: float) -> float | None:
        """When `key` was written in every region (monotonic), or None after `timeout_s`."""
        seen = self._seen.get(key, {})
        if len(seen) == len(self._targets):
            return max(seen.values())
        waiting = self._waiting[key] = asyncio.get_running_loop().create_future()
        try:
            return await asyncio.wait_for(waiting, timeout_s)
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(key, None)

    def landings(self, key: str) -> dict[str, float]:
        """When `key` was first written in each region so far (monotonic), by region."""
        return dict(self._seen.get(key, {}))

    async def _listen(self, region: str, subscription: Any) -> None:
        async for message in subscription.listen():
            now = time.monotonic()
            if message["type"] != "pmessage":
                continue
            key = message["channel"].decode()[len(_CHANNEL_PREFIX) :]
            seen = self._seen.setdefault(key, {})
            seen.setdefault(region, now)
            waiting = self._waiting.get(key)
            if len(seen) == len(self._targets) and waiting is not None and not waiting.done():
                waiting.set_result(max(seen.values()))


async def _masters(target: RedisTarget) -> list[Redis]:
    """A plain client on each master of the target (the one server of a standalone)."""
    client = redis_client(target)
    if isinstance(client, Redis):
        return [client]
    try:
        await client.initialize()
        masters = [(node.host, int(node.port)) for node in client.get_primaries()]
    finally:
        await client.aclose()
    return [redis_node_client(target, host, port) for host, port in masters]
