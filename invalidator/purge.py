"""The purge engine: turns concrete namespaces into Redis commands on one target, per strategy.

Every strategy is idempotent: replaying a purge only turns entries into misses again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.exceptions import NoScriptError, RedisError, ResponseError, SlotNotCoveredError

from contracts.catalogue import BoundNamespace, PurgeStrategy
from contracts.layout import (
    PURGE_WITH_INDEX,
    SET_EACH_LOCAL,
    generation_key,
    generation_ttl,
    hold_off_key,
    index_key,
    new_generation,
)

log = logging.getLogger(__name__)

_PIPELINE_CHUNK = 500
_SCRIPT_CHUNK = 1000
_SET_EACH_SHA = hashlib.sha1(SET_EACH_LOCAL.encode()).hexdigest()
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
    client: Redis | RedisCluster, namespaces: Sequence[BoundNamespace]
) -> PurgeCost:
    """Purge every namespace on one Redis target, each by its namespace's strategy.

    client: the target's client (standalone or Cluster).
    namespaces: concrete namespaces, already coalesced.

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
    for namespace in namespaces:
        ns = namespace.namespace
        cost.by_strategy[ns.strategy.value] = cost.by_strategy.get(ns.strategy.value, 0) + 1
        if ns.strategy is PurgeStrategy.GENERATION:
            ttl_ms = int(generation_ttl(namespace).total_seconds() * 1000)
            settings.setdefault((token, ttl_ms), []).append(generation_key(namespace))
        elif ns.strategy is not PurgeStrategy.SCAN:
            one_by_one.append(namespace)
        if ns.fill_hold_off:
            hold_ms = max(1, int(ns.fill_hold_off.total_seconds() * 1000))
            settings.setdefault((b"1", hold_ms), []).append(hold_off_key(namespace))
    for (value, ttl_ms), keys in settings.items():
        cost.commands += await set_each(client, keys, value, ttl_ms)
    for start in range(0, len(one_by_one), _PIPELINE_CHUNK):
        pipeline = client.pipeline(transaction=False)
        for namespace in one_by_one[start : start + _PIPELINE_CHUNK]:
            _queue(pipeline, namespace, token)
        results = await pipeline.execute()
        cost.commands += len(results)
        cost.keys_unlinked += sum(int(result) for result in results)
    for namespace in namespaces:
        if namespace.namespace.strategy is PurgeStrategy.SCAN:
            await _scan_purge(client, namespace, cost)
    return cost


async def set_each(
    client: Redis | RedisCluster, keys: Sequence[str], value: bytes, ttl_ms: int
) -> int:
    """SET every key to `value` with a TTL of `ttl_ms`: one script call per node (and per
    `_SCRIPT_CHUNK` keys) instead of one command per key; returns about how many commands
    were sent.

    On a Cluster, keys are grouped by the node that serves their slot in the client's map; a
    key the node refuses (the map was stale, or its slot is migrating) is set again through a
    pipeline of plain SETs, which follows MOVED and ASK redirects.
    """
    if not isinstance(client, RedisCluster):
        for start in range(0, len(keys), _SCRIPT_CHUNK):
            refused = await _set_each_on(client, keys[start : start + _SCRIPT_CHUNK], value, ttl_ms)
            if refused:
                raise ResponseError(f"SET refused for {len(refused)} keys, e.g. {refused[0]}")
        return -(-len(keys) // _SCRIPT_CHUNK)
    try:
        refused = await _set_each_by_node(client, keys, value, ttl_ms)
    except RedisError as error:
        # The slot map may be stale (a failover, a reshard, a node gone): the pipeline below
        # refreshes it while following redirects.
        log.info("per-node SET of %d keys failed (%r); set through redirects", len(keys), error)
        refused = list(keys)
    if refused:
        pipeline = client.pipeline(transaction=False)
        for key in refused:
            pipeline.execute_command("SET", key, value, "PX", ttl_ms)
        await pipeline.execute()
    return 1 + len(refused)


async def _set_each_by_node(
    client: RedisCluster, keys: Sequence[str], value: bytes, ttl_ms: int
) -> list[str]:
    """SET_EACH_LOCAL on every node for the keys its slots hold; returns the refused keys."""
    await client.initialize()  # a no-op once the slot map is loaded
    by_node: dict[str, tuple[ClusterNode, list[str]]] = {}
    for key in keys:
        node = client.get_node_from_key(key)
        if node is None:
            raise SlotNotCoveredError(f"no node serves the slot of {key}")
        by_node.setdefault(node.name, (node, []))[1].append(key)
    calls = [
        _set_each_on(client, node_keys[start : start + _SCRIPT_CHUNK], value, ttl_ms, node=node)
        for node, node_keys in by_node.values()
        for start in range(0, len(node_keys), _SCRIPT_CHUNK)
    ]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    refused = [key for refused_here in outcomes for key in refused_here]  # type: ignore[union-attr]
    if refused:
        log.info("%d keys refused by the nodes the slot map named", len(refused))
    return refused


async def _set_each_on(
    client: Redis | RedisCluster,
    keys: Sequence[str],
    value: bytes,
    ttl_ms: int,
    *,
    node: ClusterNode | None = None,
) -> list[str]:
    """One SET_EACH_LOCAL call on one node; returns the keys it refused."""
    options = {} if node is None else {"target_nodes": node}
    arguments: tuple[bytes | str | int, ...] = (value, ttl_ms, *keys)
    try:
        positions = await client.execute_command("EVALSHA", _SET_EACH_SHA, 0, *arguments, **options)
    except NoScriptError:
        positions = await client.execute_command("EVAL", SET_EACH_LOCAL, 0, *arguments, **options)
    return [keys[int(position) - 1] for position in positions]


def _queue(pipeline: Pipeline | ClusterPipeline, namespace: BoundNamespace, token: bytes) -> None:
    """Queue the one command of an `index` or `exact` namespace; its reply counts unlinked keys."""
    if namespace.namespace.strategy is PurgeStrategy.INDEX:
        ttl_ms = int(generation_ttl(namespace).total_seconds() * 1000)
        pipeline.eval(
            PURGE_WITH_INDEX, 2, generation_key(namespace), index_key(namespace), token, ttl_ms
        )
    else:  # EXACT
        # execute_command: a Cluster pipeline's unlink() is a multi-key helper, not a queue.
        pipeline.execute_command("UNLINK", namespace.key)


async def _scan_purge(
    client: Redis | RedisCluster, namespace: BoundNamespace, cost: PurgeCost
) -> None:
    pattern = escape_glob(namespace.key) + ":*"
    started = time.perf_counter()
    scanned_before, calls_before, unlinked_before = (
        cost.keys_scanned,
        cost.scan_calls,
        cost.keys_unlinked,
    )
    cost.keys_unlinked += int(await client.unlink(namespace.key))
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
                pipeline = client.pipeline(transaction=False)
                for key in found:
                    pipeline.execute_command("UNLINK", key)
                cost.keys_unlinked += sum(int(n) for n in await pipeline.execute())
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
