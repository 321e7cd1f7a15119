"""A us master is SIGKILLed mid-drain while its replica lags; the replica is promoted.

The replica is stopped (SIGSTOP, well under cluster-node-timeout) and a value larger than the
socket buffers is written to the master first, so the purges the master acknowledges next stay
in its memory, never replicated: the window a real failover can hit at any time (a replica
that lags), made wide enough to hit on purpose. With
`min_replicas_acked=1` those purges are never counted as done (WAIT finds no replica), their
offsets wait, and the promoted replica gets them on retry: nothing is lost. Without it the
invalidator commits them, the promotion drops them, and the test shows which events are lost.
The killed node is restarted (it rejoins as a replica), so the cluster ends as it began.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from contracts.example_orders import CATALOGUE, ORDER, OrderCreated
from contracts.namespaces import BoundNamespace
from invalidator import Invalidator, InvalidatorSettings
from invalidator.operators import start_at_log_end
from producers import EventPublisher, RedisClient, connect_redis
from producers.publisher import EventToPublish
from tests.faults.accounting import LONG, Outcome, account, record_outcome, scaled
from tests.faults.services import redis_us, service_process
from tests.integration.kafka_tools import caught_up
from tests.integration.us_cluster import (
    Node,
    cluster_nodes,
    master_port,
    replica_of,
    replicated_and_ok,
)
from tests.waiting import wait_until

EVENTS = scaled(3000, 30000)
CHUNK = 100
BACKLOG_BYTES = 32 * 1024 * 1024  # more than loopback's socket buffers hold


@contextlib.asynccontextmanager
async def _publishing(
    publisher: EventPublisher, run: str
) -> AsyncIterator[dict[str, BoundNamespace]]:
    """Publish EVENTS events in chunks in the background; yields event id -> its namespace."""
    published: dict[str, BoundNamespace] = {}

    async def publish() -> None:
        for start in range(0, EVENTS, CHUNK):
            orders = [f"o-{run}-{i}" for i in range(start, min(start + CHUNK, EVENTS))]
            envelopes = await publisher.publish_many(
                EventToPublish(
                    OrderCreated(order_id=order, company_id=f"c-{run}", total_cents=1),
                    tenant="acme",
                    aggregate_version=1,
                )
                for order in orders
            )
            for envelope, order in zip(envelopes, orders, strict=True):
                published[str(envelope.event_id)] = ORDER.bind(order_id=order)
            await asyncio.sleep(0.01)  # a steady stream, not one burst

    task = asyncio.create_task(publish())
    try:
        yield published
        await asyncio.wait_for(task, timeout=300)
    finally:
        task.cancel()


async def _promoted(seed: Node, replica: Node) -> bool:
    """True once `seed` sees `replica` as a master serving slots."""
    try:
        nodes = await cluster_nodes(seed.host, seed.port)
    except RedisError:
        return False
    return any(
        n.node_id == replica.node_id and n.master_id is None and n.serves_slots for n in nodes
    )


async def _clog_replication(client: RedisClient, master: Node) -> str:
    """Write a value larger than the socket buffers to `master`: while its replica is stopped,
    everything the master writes afterwards stays in the master's own memory, unreplicated."""
    assert isinstance(client, RedisCluster)
    key = next(
        key
        for key in (f"failover-backlog-{i}" for i in range(10_000))
        if master_port(client, key) == master.port
    )
    await client.set(key, b"x" * BACKLOG_BYTES, px=120_000)
    return key


async def _fail_over(
    invalidator: Invalidator, client: RedisClient, nodes: list[Node], *, acknowledged: bool
) -> float:
    """Stop a master's replica, let the drain go on, SIGKILL the master, resume the replica,
    wait for its promotion, restart the killed node and wait until it is a linked replica.

    Returns the monotonic time of the kill.
    """
    master = next(n for n in nodes if n.master_id is None and n.serves_slots)
    replica = replica_of(nodes, master)
    witness = next(n for n in nodes if n.master_id is None and n not in (master, replica))
    master_server = service_process(redis_us(master.port))
    replica_server = service_process(redis_us(replica.port))
    before = invalidator.stats.events
    await client.initialize()  # now: the seed node may be the replica about to be stopped
    async with replica_server.frozen():
        await _clog_replication(client, master)
        if acknowledged:

            async def stalled() -> bool:
                return invalidator.stats.purge_retries >= 1

            await wait_until(stalled, within=10, what="purges to wait for the replica")
        else:

            async def went_on() -> bool:
                return invalidator.stats.events >= before + 3 * CHUNK

            await wait_until(went_on, within=10, what="purges acknowledged by the master alone")
        await master_server.kill()
        killed = time.monotonic()
    try:
        await wait_until(
            lambda: _promoted(witness, replica),
            within=60,
            what=f"{replica.port} to be promoted in place of {master.port}",
            interval=0.2,
        )
    finally:
        await master_server.start_again()
    await wait_until(
        lambda: replicated_and_ok(witness.host, witness.port),
        within=60,
        what=f"{master.port} to rejoin as a replica",
        interval=0.2,
    )
    return killed


# Without the option, losing a purge takes a kill inside the unreplicated window, which a busy
# machine can miss: that run is a measurement of `make faults`, not a check of `make test`.
CASES = [("acknowledged", 1), *([("unacknowledged", 0)] if LONG else [])]
"""(id, min_replicas_acked) of each run."""


@pytest.mark.parametrize("min_replicas_acked", [n for _, n in CASES], ids=[i for i, _ in CASES])
async def test_master_killed_mid_drain(
    min_replicas_acked: int, settings: InvalidatorSettings, publisher: EventPublisher
) -> None:
    us_target = settings.targets("us")[0]
    assert us_target.cluster, "the failover test needs the us region to be a Redis Cluster"
    seed = urlparse(us_target.url)
    seed_host, seed_port = seed.hostname or "127.0.0.1", seed.port or 6379
    await wait_until(
        lambda: replicated_and_ok(seed_host, seed_port),
        within=60,
        what="3 us masters, each with its replica linked",
        interval=0.2,
    )
    target = us_target.model_copy(
        update={"min_replicas_acked": min_replicas_acked, "replicas_timeout_ms": 500}
    )
    settings = settings.model_copy(
        update={
            "regions": {**settings.regions, "us": [target]},
            "retry_initial_s": 0.05,
            "retry_max_s": 0.5,
        }
    )
    group, topics = settings.group_id("us"), CATALOGUE.topics()
    await start_at_log_end(settings.kafka, group, topics)
    invalidator = Invalidator(settings, region="us", catalogue=CATALOGUE)
    running = asyncio.create_task(invalidator.run())
    client = connect_redis(target)
    try:
        await asyncio.wait_for(invalidator.assigned.wait(), timeout=60)
        async with _publishing(publisher, uuid.uuid4().hex[:8]) as published:

            async def under_way() -> bool:
                return invalidator.stats.events >= EVENTS // 10

            await wait_until(under_way, within=60, what="the drain to be under way")
            nodes = await cluster_nodes(seed_host, seed_port)
            killed = await _fail_over(
                invalidator, client, nodes, acknowledged=bool(min_replicas_acked)
            )
        await wait_until(
            lambda: caught_up(settings.kafka, group, topics),
            within=120,
            what="the us drain to finish",
            interval=0.2,
        )
        recover_s = time.monotonic() - killed
        outcome = await account(published, {"us": client})
    finally:
        invalidator.stop()
        await asyncio.wait_for(running, timeout=60)
        await client.aclose()
    lost = len(outcome.lost["us"])
    scenario = "us master SIGKILLed mid-drain, replica lagging" + (
        ", min_replicas_acked=1" if min_replicas_acked else ", no WAIT"
    )
    record_outcome(Outcome(scenario, outcome.published, lost, 0, recover_s))
    if min_replicas_acked:
        outcome.assert_nothing_lost()
    else:
        # What the option prevents: purges the dead master acknowledged alone are gone.
        assert lost > 0, "no purge lost without WAIT: the kill missed the unreplicated window"
