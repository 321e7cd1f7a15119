"""Setting many keys at once: one script call per Redis node instead of one command per key.

The purge of a batch writes thousands of generation tokens; redis-py spends far more time
packing and parsing one command per key than Redis spends setting them. `SET_EACH_LOCAL` carries
many keys (of many Cluster slots) in one call to the node that serves them. Redis checks every
key a script touches against the node's own slot table, so a key the node does not serve (the
client's slot map is stale, or the slot is migrating and the key already left) is refused,
never written on the wrong node; refused keys are set again by plain SETs that follow MOVED and
ASK redirects (so are all keys when the script call fails, unless for a permission the user
lacks: that is a defect, raised). `tests/faults/test_reshard.py` proves it under a live reshard.

With a `ReplicaAck`, each call is followed by WAIT on its own connection
(`invalidator.replication`), and keys set through redirects are set again that way on the
node that now serves them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from binascii import crc_hqx
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.exceptions import (
    NoPermissionError,
    NoScriptError,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)

from contracts.layout import SET_EACH_LOCAL
from invalidator.replication import ReplicaAck, ReplicasNotReachedError, execute_acknowledged

log = logging.getLogger(__name__)

_KEYS_PER_CALL = 2000
_SLOT_MASK = 16383
"""Redis Cluster's 16,384 slots: a key's slot is its CRC16 modulo 16,384."""
_SHA = hashlib.sha1(SET_EACH_LOCAL.encode()).hexdigest()

Argument = bytes | str | int


@dataclass(frozen=True)
class KeySetting:
    """Keys that all get one value and one time-to-live."""

    value: bytes
    ttl_ms: int
    keys: Sequence[str]


async def set_keys(
    client: Redis | RedisCluster,
    settings: Sequence[KeySetting],
    *,
    ack: ReplicaAck | None = None,
) -> int:
    """SET every key of every setting; returns how many calls went to Redis.

    client: a standalone or Cluster client.
    settings: the keys, grouped by value and time-to-live.
    ack: replicas that must have every key before this returns (None: the master's reply).
    Raises a RedisError when a key could not be set (the purge is then retried whole).
    """
    if not isinstance(client, RedisCluster):
        calls = _calls(settings)
        refused = await _gather([_set_on(client, call, ack=ack) for call in calls])
        if refused:
            raise ResponseError(f"SET refused for {len(refused)} keys, e.g. {refused[0][0]}")
        return len(calls)
    try:
        calls_made, refused = await _set_by_node(client, settings, ack)
    except (ReplicasNotReachedError, NoPermissionError):
        # Too few replicas is retried as it is. A user whose ACL lacks EVAL/EVALSHA is a
        # defect to report: plain SETs would hide it (without an ack they succeed, slowly).
        raise
    except RedisError as error:
        # The slot map may be stale (a failover, a reshard, a node gone): the pipeline below
        # refreshes it while it follows redirects.
        log.info("per-node SET failed (%r); every key set through redirects", error)
        calls_made = 0
        refused = [(key, s.value, s.ttl_ms) for s in settings for key in s.keys]
    if refused:
        log.info("%d keys set through redirects (not served where the slot map said)", len(refused))
        pipeline = client.pipeline(transaction=False)
        for key, value, ttl_ms in refused:
            pipeline.execute_command("SET", key, value, "PX", ttl_ms)
        await pipeline.execute()
        calls_made += 1
        if ack is not None:
            # A redirected SET was not followed by WAIT: set the keys again, acknowledged, on
            # the nodes the refreshed slot map names.
            again = [KeySetting(value, ttl_ms, [key]) for key, value, ttl_ms in refused]
            more_calls, still_refused = await _set_by_node(client, again, ack)
            calls_made += more_calls
            if still_refused:
                raise TryAgainError(
                    f"{len(still_refused)} keys moved again while being acknowledged,"
                    f" e.g. {still_refused[0][0]}"
                )
    return calls_made


Refused = list[tuple[str, bytes, int]]


async def _set_by_node(
    client: RedisCluster, settings: Sequence[KeySetting], ack: ReplicaAck | None
) -> tuple[int, Refused]:
    await client.initialize()  # a no-op once the slot map is loaded
    slot_holders = client.nodes_manager.slots_cache  # slot -> [primary, replicas...]
    nodes: dict[str, ClusterNode] = {}
    per_node: dict[str, dict[tuple[bytes, int], list[str]]] = {}
    for setting in settings:
        group = (setting.value, setting.ttl_ms)
        # This setting's keys per master (a batch's thousands of keys: the loop is kept short).
        by_node: dict[str, list[str]] = {}
        for key in setting.keys:
            holders = slot_holders.get(slot_of(key))
            if not holders:
                raise SlotNotCoveredError(f"no node serves the slot of {key}")
            node = holders[0]
            on_node = by_node.get(node.name)
            if on_node is None:
                on_node = by_node[node.name] = []
                nodes[node.name] = node
            on_node.append(key)
        for name, keys in by_node.items():
            # Settings may share a value and TTL (keys set again one by one after redirects).
            per_node.setdefault(name, {}).setdefault(group, []).extend(keys)
    calls = [
        _set_on(client, call, node=nodes[name], ack=ack)
        for name, groups in per_node.items()
        for call in _calls([KeySetting(v, ttl, keys) for (v, ttl), keys in groups.items()])
    ]
    return len(calls), await _gather(calls)


def slot_of(key: str) -> int:
    """The Cluster slot of `key`, as Redis (and redis-py's `key_slot`) computes it.

    The keys set here start with their namespace's hash tag (`{N}:gen`, `{N}:holdoff`): the
    slot is the CRC16 of `N` alone, computed without `key_slot`'s general search, which cost
    more than the rest of the per-key work of a purge."""
    end = key.find("}")
    if key[:1] == "{" and end > 1:
        return crc_hqx(key[1:end].encode(), 0) & _SLOT_MASK
    return key_slot(key.encode())


def _calls(settings: Sequence[KeySetting]) -> list[list[KeySetting]]:
    """Split settings into calls of at most `_KEYS_PER_CALL` keys."""
    calls: list[list[KeySetting]] = [[]]
    room = _KEYS_PER_CALL
    for setting in settings:
        keys = setting.keys
        while keys:
            if room == 0:
                calls.append([])
                room = _KEYS_PER_CALL
            taken, keys = keys[:room], keys[room:]
            calls[-1].append(KeySetting(setting.value, setting.ttl_ms, taken))
            room -= len(taken)
    return [call for call in calls if call]


async def _set_on(
    client: Redis | RedisCluster,
    call: list[KeySetting],
    *,
    node: ClusterNode | None = None,
    ack: ReplicaAck | None = None,
) -> Refused:
    """One SET_EACH_LOCAL call (on `node` of a Cluster); returns the keys it refused."""
    arguments: list[Argument] = []
    for setting in call:
        arguments += (setting.value, setting.ttl_ms, "\n".join(setting.keys))
    try:
        positions = await _script(client, ("EVALSHA", _SHA, 0, *arguments), node, ack)
    except NoScriptError:
        positions = await _script(client, ("EVAL", SET_EACH_LOCAL, 0, *arguments), node, ack)
    return [_key_at(call, int(position)) for position in positions]


async def _script(
    client: Redis | RedisCluster,
    command: tuple[Argument, ...],
    node: ClusterNode | None,
    ack: ReplicaAck | None,
) -> Any:
    """The script call's reply; with `ack`, once its writes reached the replicas."""
    if ack is not None:
        (reply,) = await execute_acknowledged(client, [command], ack, node=node)
        return reply
    options = {} if node is None else {"target_nodes": node}
    return await client.execute_command(*command, **options)


def _key_at(call: list[KeySetting], position: int) -> tuple[str, bytes, int]:
    """The key at 1-based `position` among the keys of `call`, with its value and TTL."""
    index = position - 1
    for setting in call:
        if index < len(setting.keys):
            return setting.keys[index], setting.value, setting.ttl_ms
        index -= len(setting.keys)
    raise ResponseError(f"SET_EACH_LOCAL named key {position}; the call had fewer")


async def _gather(calls: list[Coroutine[Any, Any, Refused]]) -> Refused:
    """Run the calls concurrently; raise the first failure only after every call ended."""
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    refused: Refused = []
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
        refused += outcome
    return refused
