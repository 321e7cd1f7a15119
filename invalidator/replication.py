"""Purges a failover cannot undo: each node's writes and a `WAIT` for replicas on one connection.

Redis replicates asynchronously: a master acknowledges a write before any replica has it, and a
replica promoted after the master died has never seen it. `WAIT numreplicas timeout` blocks
until that many replicas acknowledged the writes *of the connection it is sent on*; redis-py
pools connections, so a WAIT sent as a command of its own could travel on an idle connection
and return at once, proving nothing. Here the writes and their WAIT always go out together on
one connection: a standalone client's pipeline, or one pipeline to one Cluster node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    NoPermissionError,
    SlotNotCoveredError,
    TimeoutError,
    TryAgainError,
)

from contracts.connections import RedisTarget

Command = Sequence[bytes | str | int]


@dataclass(frozen=True)
class ReplicaAck:
    """How many replicas must acknowledge a purge's writes, and how long to wait for them."""

    replicas: int
    timeout_ms: int

    @classmethod
    def of(cls, target: RedisTarget) -> ReplicaAck | None:
        """The target's requirement, or None when its master's reply is enough."""
        if target.min_replicas_acked == 0:
            return None
        return cls(target.min_replicas_acked, target.replicas_timeout_ms)


class ReplicasNotReachedError(TimeoutError):
    """Fewer replicas than required acknowledged the writes in time; the purge is retried.

    A redis `TimeoutError`, so the invalidator treats it as transient: the master's replica is
    lagging, down, or being promoted, and the purge's offsets must not be committed yet.
    """


async def execute_acknowledged(
    client: Redis | RedisCluster,
    commands: Sequence[Command],
    ack: ReplicaAck,
    *,
    node: ClusterNode | None = None,
) -> list[Any]:
    """Send `commands`, then WAIT, on one connection; the replies of `commands`.

    client: a standalone client, or the Cluster client that `node` belongs to.
    commands: the writes, each a command with its arguments.
    ack: how many replicas, within how long.
    node: for a Cluster, the master that serves every key of `commands` (no redirect is
        followed: a reply that redirects is raised, like any error reply).
    Raises the first error reply of `commands`, the WAIT's NoPermissionError, or
    `ReplicasNotReachedError`.
    """
    wait = ("WAIT", ack.replicas, ack.timeout_ms)
    if node is None:
        if isinstance(client, RedisCluster):
            raise ValueError("a Cluster client needs the node the commands go to")
        pipeline = client.pipeline(transaction=False)
        for command in (*commands, wait):
            pipeline.execute_command(*command)
        replies = list(await pipeline.execute(raise_on_error=False))
        where = "the server"
    else:
        queued = [PipelineCommand(i, *command) for i, command in enumerate((*commands, wait))]
        await node.execute_pipeline(queued)
        replies = [command.result for command in queued]
        where = node.name
    *written, acknowledged = replies
    for reply in written:
        if isinstance(reply, Exception):
            raise reply
    if isinstance(acknowledged, NoPermissionError):
        # The user may not WAIT (its ACL lacks +wait): a defect to fix, not a lagging replica.
        raise acknowledged
    if isinstance(acknowledged, Exception):
        # "WAIT cannot be used with replica instances": the node was demoted by a failover.
        raise ReplicasNotReachedError(f"WAIT on {where} failed: {acknowledged}")
    if int(acknowledged) < ack.replicas:
        raise ReplicasNotReachedError(
            f"{acknowledged} of {ack.replicas} replica(s) of {where} acknowledged a purge's"
            f" writes within {ack.timeout_ms} ms; it is retried"
        )
    return written


async def execute_keyed_acknowledged(
    client: Redis | RedisCluster, commands: Sequence[tuple[str | bytes, Command]], ack: ReplicaAck
) -> list[Any]:
    """Run each (key, command) where `key` is served, every node's share followed by WAIT.

    client: a standalone or Cluster client.
    commands: each command with the key that routes it (for a Cluster, its slot's master).
    ack: how many replicas, within how long.
    Returns the replies in the order of `commands`. A redirect (the slot map was stale) reloads
    the slot map and raises `TryAgainError`, so the whole purge is retried on the new owners.
    """
    if not isinstance(client, RedisCluster):
        return await execute_acknowledged(client, [command for _, command in commands], ack)
    await client.initialize()  # a no-op once the slot map is loaded
    slot_holders = client.nodes_manager.slots_cache
    positions: dict[str, list[int]] = {}
    nodes: dict[str, ClusterNode] = {}
    for position, (key, _) in enumerate(commands):
        holders = slot_holders.get(key_slot(key if isinstance(key, bytes) else key.encode()))
        if not holders:
            raise SlotNotCoveredError(f"no node serves the slot of {key!r}")
        nodes[holders[0].name] = holders[0]
        positions.setdefault(holders[0].name, []).append(position)
    names = list(positions)
    outcomes = await asyncio.gather(
        *(
            execute_acknowledged(
                client, [commands[p][1] for p in positions[name]], ack, node=nodes[name]
            )
            for name in names
        ),
        return_exceptions=True,
    )
    replies: list[Any] = [None] * len(commands)
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, AskError):  # MOVED or ASK
            await client.nodes_manager.initialize()
            raise TryAgainError(f"{name} no longer serves a purged key ({outcome}); retried")
        if isinstance(outcome, BaseException):
            raise outcome
        for position, reply in zip(positions[name], outcome, strict=True):
            replies[position] = reply
    return replies
