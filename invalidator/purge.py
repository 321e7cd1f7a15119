"""The purge engine: turns concrete namespaces into Redis commands on one target."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from contracts.catalogue import BoundNamespace, PurgeStrategy
from contracts.layout import generation_key, generation_ttl, new_generation

SUPPORTED_STRATEGIES = frozenset({PurgeStrategy.GENERATION})
"""Strategies this engine executes; the invalidator refuses to start on a catalogue using others."""

_PIPELINE_CHUNK = 500


async def purge_namespaces(
    client: Redis | RedisCluster, namespaces: Sequence[BoundNamespace]
) -> int:
    """Purge every namespace on one Redis target; returns how many commands were sent.

    client: the target's client (standalone or Cluster; a Cluster pipeline groups per master).
    namespaces: concrete namespaces, already coalesced.

    The `generation` strategy writes one new token per namespace: O(1) per namespace, no scan,
    and replaying it is harmless (a new token only turns entries into misses).
    """
    token = new_generation()
    sent = 0
    for start in range(0, len(namespaces), _PIPELINE_CHUNK):
        pipeline = client.pipeline(transaction=False)
        for namespace in namespaces[start : start + _PIPELINE_CHUNK]:
            ttl_ms = int(generation_ttl(namespace).total_seconds() * 1000)
            pipeline.set(generation_key(namespace), token, px=ttl_ms)
            sent += 1
        await pipeline.execute()
    return sent
