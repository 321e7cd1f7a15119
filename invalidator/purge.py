"""The purge engine: turns concrete namespaces into Redis commands on one target, per strategy.

Every strategy is idempotent: replaying a purge only turns entries into misses again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from redis.asyncio.cluster import RedisCluster

from contracts.layout import (
    PURGE_WITH_INDEX,
    generation_key,
    generation_key_of,
    generation_ttl,
    hold_off_key,
    index_key,
    new_generation,
)
from contracts.namespaces import BoundNamespace, PurgeStrategy
from contracts.redis_clients import RedisClient
from invalidator.bulk_set import KeySetting, set_keys
from invalidator.planner import NamespaceKeys, grouped
from invalidator.replication import Command, ReplicaAck, execute_keyed_acknowledged

log = logging.getLogger(__name__)

_PIPELINE_CHUNK = 500
_SCAN_COUNT = 1000
_GLOB_SPECIAL = frozenset("*?[]\\")


@dataclass
class PurgeCost:
    """What one purge call cost on one target."""

    commands: int = 0
    keys_unlinked: int = 0
    scan_calls: int = 0
    keys_scanned: int = 0
    scan_seconds: float = 0.0
    by_strategy: dict[str, int] = field(default_factory=dict)


def escape_glob(text: str) -> str:
    """`text` with Redis glob specials (`* ? [ ] \\`) escaped, so SCAN MATCH takes it literally."""
    return "".join("\\" + c if c in _GLOB_SPECIAL else c for c in text)


async def purge_namespaces(
    client: RedisClient,
    namespaces: Sequence[BoundNamespace],
    *,
    ack: ReplicaAck | None = None,
) -> PurgeCost:
    """Purge concrete namespaces on one Redis target (see `purge_on_target`)."""
    return await purge_on_target(client, grouped(namespaces), ack=ack)


async def purge_on_target(
    client: RedisClient, by_namespace: NamespaceKeys, *, ack: ReplicaAck | None = None
) -> PurgeCost:
    """Purge every namespace on one Redis target, each by its namespace's strategy.

    client: the target's client (standalone or Cluster).
    by_namespace: each declaration with its rendered keys, already coalesced.
    ack: replicas that must have acknowledged every write before this returns
        (`invalidator.replication`; None: the master's reply is enough).

    `generation`: one new token per namespace, O(1), no scan; the tokens (and hold-off markers)
    go out as one script call per node carrying many keys. `index`: a new token and the indexed
    entries unlinked, in one script. `exact`: UNLINK the rendered key. `scan`: SCAN MATCH
    `<key>:*` on every master and UNLINK what it finds, O(keyspace), logged.
    A namespace with a fill hold-off also gets its hold-off marker.
    """
    cost = PurgeCost()
    token = new_generation()
    # (value, ttl ms) -> keys: every generation token of one TTL, every marker of one hold-off.
    settings: dict[tuple[bytes, int], list[str]] = {}
    one_by_one: list[BoundNamespace] = []
    scans: list[BoundNamespace] = []
    for ns, keys in by_namespace:
        cost.by_strategy[ns.strategy.value] = cost.by_strategy.get(ns.strategy.value, 0) + len(keys)
        if ns.strategy is PurgeStrategy.GENERATION:
            ttl_ms = int(generation_ttl(ns).total_seconds() * 1000)
            generation_keys = settings.setdefault((token, ttl_ms), [])
            generation_keys.extend(map(generation_key_of, keys))
        else:
            bound = [BoundNamespace(ns, key) for key in keys]
            (scans if ns.strategy is PurgeStrategy.SCAN else one_by_one).extend(bound)
        if ns.fill_hold_off:
            hold_ms = max(1, int(ns.fill_hold_off.total_seconds() * 1000))
            markers = settings.setdefault((b"1", hold_ms), [])
            markers.extend(hold_off_key(BoundNamespace(ns, key)) for key in keys)
    if settings:
        cost.commands += await set_keys(
            client,
            [KeySetting(value, ttl_ms, keys) for (value, ttl_ms), keys in settings.items()],
            ack=ack,
        )
    for start in range(0, len(one_by_one), _PIPELINE_CHUNK):
        chunk = [
            _command(namespace, token) for namespace in one_by_one[start : start + _PIPELINE_CHUNK]
        ]
        results = await _execute(client, chunk, ack)
        cost.commands += len(results)
        cost.keys_unlinked += sum(int(result) for result in results)
    for namespace in scans:
        await _scan_purge(client, namespace, cost, ack)
    return cost


def _command(namespace: BoundNamespace, token: bytes) -> tuple[str, Command]:
    """The one command of an `index` or `exact` namespace, with the key that routes it.

    Its reply counts the keys it unlinked.
    """
    if namespace.namespace.strategy is PurgeStrategy.INDEX:
        ttl_ms = int(generation_ttl(namespace.namespace).total_seconds() * 1000)
        gen_key = generation_key(namespace)
        return gen_key, ("EVAL", PURGE_WITH_INDEX, 2, gen_key, index_key(namespace), token, ttl_ms)
    return namespace.key, ("UNLINK", namespace.key)  # EXACT


async def _execute(
    client: RedisClient,
    commands: Sequence[tuple[str | bytes, Command]],
    ack: ReplicaAck | None,
) -> list[Any]:
    """Run keyed commands in one pipeline (following redirects), or acknowledged by replicas."""
    if ack is not None:
        return await execute_keyed_acknowledged(client, commands, ack)
    pipeline = client.pipeline(transaction=False)
    for _, command in commands:
        # execute_command: a Cluster pipeline's unlink() is a multi-key helper, not a queue.
        pipeline.execute_command(*command)
    return list(await pipeline.execute())


async def _scan_purge(
    client: RedisClient, namespace: BoundNamespace, cost: PurgeCost, ack: ReplicaAck | None
) -> None:
    pattern = escape_glob(namespace.key) + ":*"
    started = time.perf_counter()
    scanned_before, calls_before, unlinked_before = (
        cost.keys_scanned,
        cost.scan_calls,
        cost.keys_unlinked,
    )
    (unlinked,) = await _execute(client, [(namespace.key, ("UNLINK", namespace.key))], ack)
    cost.keys_unlinked += int(unlinked)
    cost.commands += 1
    masters = client.get_primaries() if isinstance(client, RedisCluster) else [None]
    for master in masters:
        cursor = 0
        while True:
            if master is None:
                cursor, found = await client.scan(cursor, match=pattern, count=_SCAN_COUNT)
            else:
                per_node, found = await client.scan(
                    cursor, match=pattern, count=_SCAN_COUNT, target_nodes=master
                )
                cursor = cast(dict[str, int], per_node)[master.name]  # answered per node
            cost.scan_calls += 1
            cost.keys_scanned += len(found)
            # Keys of one SCAN page may sit in many slots: unlink them one by one in a
            # pipeline (multi-key UNLINK across slots is refused by a Cluster).
            if found:
                unlinks = [(key, ("UNLINK", key)) for key in found]
                cost.keys_unlinked += sum(int(n) for n in await _execute(client, unlinks, ack))
                cost.commands += len(found)
            if int(cursor) == 0:
                break
    cost.scan_seconds += time.perf_counter() - started
    log.info(
        "scan purge of %s on %d master(s): %d SCAN calls, %d keys matched, %d unlinked, %.1f ms "
        "(O(keyspace): prefer the generation strategy for keys written through the client)",
        namespace.key,
        len(masters),
        cost.scan_calls - calls_before,
        cost.keys_scanned - scanned_before,
        cost.keys_unlinked - unlinked_before,
        (time.perf_counter() - started) * 1000,
    )
