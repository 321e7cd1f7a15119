"""A purge with `min_replicas_acked` waits for the replica of every master it wrote, on the very
connection that wrote: a stopped replica makes it fail (transiently) instead of passing."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import AsyncIterator
from typing import cast

import pytest
from redis.asyncio import RedisCluster

from contracts import Namespace, PurgeRule, PurgeStrategy
from contracts.example_orders import ORDER, OrderCreated
from contracts.layout import generation_key
from contracts.namespaces import BoundNamespace
from invalidator.purge import purge_namespaces
from invalidator.replication import ReplicaAck, ReplicasNotReachedError
from producers import RedisClient
from tests.integration.us_cluster import Node, cluster_nodes, node_pid, replica_of
from tests.waiting import wait_until

ACK = ReplicaAck(replicas=1, timeout_ms=300)
INDEXED = Namespace(
    name="replicated_index_test",
    template="replicated:{id}",
    owner="tests",
    description="an index-strategy namespace for replication tests",
    strategy=PurgeStrategy.INDEX,
    purged_by=(PurgeRule(OrderCreated, {"id": "payload.order_id"}),),
)


@pytest.fixture
async def stopped_replica(
    redis_clients: dict[str, RedisClient],
) -> AsyncIterator[tuple[Node, BoundNamespace, BoundNamespace]]:
    """Two us namespaces on one master whose replica is SIGSTOPped (resumed afterwards)."""
    us = cast(RedisCluster, redis_clients["us"])
    await us.initialize()
    run = uuid.uuid4().hex[:8]
    generation = ORDER.bind(order_id=f"o-{run}")
    master = us.get_node_from_key(generation_key(generation))
    assert master is not None
    indexed = next(  # an index-strategy namespace on the same master
        bound
        for bound in (INDEXED.bind(id=f"i-{run}-{i}") for i in range(1000))
        if us.get_node_from_key(generation_key(bound)) == master
    )
    nodes = await cluster_nodes(master.host, int(master.port))
    serving = next(n for n in nodes if n.port == master.port and n.host == master.host)
    replica = replica_of(nodes, serving)
    pid = await node_pid(replica)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield serving, generation, indexed
    finally:
        os.kill(pid, signal.SIGCONT)


async def test_a_purge_waits_for_the_replica_of_the_master_it_wrote(
    redis_clients: dict[str, RedisClient],
    stopped_replica: tuple[Node, BoundNamespace, BoundNamespace],
) -> None:
    us = redis_clients["us"]
    _, generation, indexed = stopped_replica
    for bound in (generation, indexed):
        with pytest.raises(ReplicasNotReachedError, match="0 of 1 replica"):
            await purge_namespaces(us, [bound], ack=ACK)
        # Without the option the master's reply is enough: the same purge passes.
        await purge_namespaces(us, [bound])


async def test_once_the_replica_answers_the_purge_succeeds(
    redis_clients: dict[str, RedisClient],
) -> None:
    bound = ORDER.bind(order_id=f"o-{uuid.uuid4().hex[:8]}")
    us = redis_clients["us"]

    async def acknowledged() -> bool:
        try:
            await purge_namespaces(us, [bound], ack=ACK)
        except ReplicasNotReachedError:
            return False  # a replica still catching up after the previous test
        return True

    await wait_until(acknowledged, within=30, what="an acknowledged purge", interval=0.2)
    assert await us.exists(generation_key(bound))


async def test_a_standalone_server_without_replicas_never_acknowledges(
    redis_clients: dict[str, RedisClient],
) -> None:
    bound = ORDER.bind(order_id=f"o-{uuid.uuid4().hex[:8]}")
    with pytest.raises(ReplicasNotReachedError, match="0 of 1 replica"):
        await purge_namespaces(redis_clients["eu"], [bound], ack=ACK)
