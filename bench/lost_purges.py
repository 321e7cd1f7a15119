"""Whether every pre-produced event's namespaces were purged in a region: generation keys exist.

A run's company and order ids are new, so their generation keys are absent before the run and
only a purge writes them; one missing after the drain is a lost purge.
"""

from __future__ import annotations

from collections.abc import Iterable

from contracts import RedisTarget
from producers import RedisClient, connect_redis

_CHUNK = 2_000


async def missing_keys(client: RedisClient, keys: Iterable[str]) -> list[str]:
    """The keys of `keys` that do not exist on this target.

    client: the region's Redis (standalone or Cluster).
    keys: generation keys.
    """
    wanted = sorted(keys)
    missing = []
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        pipeline = client.pipeline(transaction=False)
        for key in chunk:
            pipeline.exists(key)
        replies = await pipeline.execute()
        missing += [key for key, found in zip(chunk, replies, strict=True) if not found]
    return missing


async def unlink_keys(client: RedisClient, keys: Iterable[str]) -> None:
    """Remove `keys` (a run's generation keys), so that runs do not fill Redis."""
    wanted = list(keys)
    for start in range(0, len(wanted), _CHUNK):
        pipeline = client.pipeline(transaction=False)
        for key in wanted[start : start + _CHUNK]:
            pipeline.execute_command("UNLINK", key)
        await pipeline.execute()


async def lost_purges(target: RedisTarget, keys: Iterable[str]) -> int:
    """How many of a set's generation keys are missing on `target` (lost purges); then remove
    them all.

    target: the region's Redis, as a login that may read and unlink the keys.
    keys: the set's generation keys.
    """
    wanted = set(keys)
    client = connect_redis(target)
    try:
        missing = await missing_keys(client, wanted)
        await unlink_keys(client, wanted)
    finally:
        await client.aclose()
    return len(missing)
