"""The bare purge: what any consumer that purges a Redis Cluster must at least spend, written
with plain redis-py and nothing of this project's purge engine.

For each orders event a bare consumer read, it SETs the three keys the event's purge writes
(company orders, company order stats, the order), prefixed `bare:` so that they never touch the
system's own keys yet share their hash tags (the same slots, the same masters). Each batch
goes out as one pipeline per master, each pipeline followed by `WAIT` for the replicas on the
same connection, the masters in parallel: the least a purge that a failover cannot undo costs.
A keyspace watch on `bare:` keys times each landing as the system's purges are timed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

PREFIX = "bare:"
TOKEN_TTL_MS = 600_000


def bare_keys(value: dict[str, Any]) -> list[str]:
    """The `bare:` keys for one decoded orders event (an envelope with a `payload`)."""
    payload = value["payload"]
    company, order = payload["company_id"], payload["order_id"]
    return [
        f"{PREFIX}{{company:{company}:orders}}:gen",
        f"{PREFIX}{{company:{company}:order-stats}}:gen",
        f"{PREFIX}{{order:{order}}}:gen",
    ]


def bare_key_of_order(order_key: str) -> str:
    """The `bare:` key of an order's namespace, from the record key `order:<id>`."""
    return f"{PREFIX}{{{order_key}}}:gen"


class BarePurger:
    """Plain SET + WAIT per master of a Redis Cluster, for every event a bare reader fetched."""

    def __init__(self, host: str, port: int, *, replicas: int, timeout_ms: int = 1000) -> None:
        """host, port: a node of the Cluster.
        replicas: how many replicas each master's WAIT asks for (0: no WAIT).
        timeout_ms: WAIT's timeout.
        """
        self._seed = (host, port)
        self._replicas = replicas
        self._timeout_ms = timeout_ms
        self._masters: dict[int, Redis] = {}
        self._by_address: dict[tuple[str, int], Redis] = {}

    async def start(self) -> None:
        """Read the slot map once and open one connection per master."""
        cluster = RedisCluster(host=self._seed[0], port=self._seed[1])
        try:
            await cluster.initialize()
            for slot, holders in cluster.nodes_manager.slots_cache.items():
                address = (holders[0].host, int(holders[0].port))
                if address not in self._by_address:
                    self._by_address[address] = Redis(
                        host=address[0], port=address[1], single_connection_client=True
                    )
                self._masters[slot] = self._by_address[address]
        finally:
            await cluster.aclose()

    async def stop(self) -> None:
        """Close the connections."""
        for client in self._by_address.values():
            await client.aclose()

    async def purge(self, values: Sequence[dict[str, Any]]) -> None:
        """SET every event's `bare:` keys, one pipeline (+ WAIT) per master, in parallel."""
        by_master: dict[int, tuple[Redis, list[str]]] = {}
        for value in values:
            for key in bare_keys(value):
                client = self._masters[key_slot(key.encode())]
                by_master.setdefault(id(client), (client, []))[1].append(key)
        await asyncio.gather(*(self._set(client, keys) for client, keys in by_master.values()))

    async def _set(self, client: Redis, keys: list[str]) -> None:
        pipeline = client.pipeline(transaction=False)
        for key in keys:
            pipeline.set(key, b"1", px=TOKEN_TTL_MS)
        if self._replicas:
            pipeline.execute_command("WAIT", self._replicas, self._timeout_ms)
        await pipeline.execute()
