"""The Redis Cluster of a region, seen node by node: roles, replicas, processes, health."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError


@dataclass(frozen=True)
class Node:
    """One node as CLUSTER NODES lists it."""

    node_id: str
    host: str
    port: int
    master_id: str | None
    """The master it replicates; None for a master."""
    failed: bool
    serves_slots: bool


def master_port(client: RedisCluster, key: str) -> int:
    """The port of the master that `client` sends `key` to (by its slot map)."""
    node = client.get_node_from_key(key)
    assert node is not None
    return int(node.port)


async def _call(host: str, port: int, *command: str | int) -> object:
    client = Redis(host=host, port=port, socket_timeout=2, socket_connect_timeout=2)
    try:
        return await client.execute_command(*command)  # type: ignore[no-untyped-call]
    finally:
        await client.aclose()


async def cluster_nodes(host: str, port: int) -> list[Node]:
    """Every node the node at host:port knows (CLUSTER NODES)."""
    text = await _call(host, port, "CLUSTER", "NODES")
    nodes = []
    for line in (text.decode() if isinstance(text, bytes) else str(text)).splitlines():
        node_id, address, flags, master, *_, link_state = line.split()[:8]
        slots = line.split()[8:]
        node_host, _, rest = address.partition("@")[0].rpartition(":")
        nodes.append(
            Node(
                node_id=node_id,
                host=node_host,
                port=int(rest),
                master_id=None if master == "-" else master,
                failed="fail" in flags.split(",") or link_state != "connected",
                serves_slots=bool(slots),
            )
        )
    return nodes


async def node_pid(node: Node) -> int:
    """The process id of the node's redis-server (INFO server)."""
    info = await _info(node.host, node.port, "server")
    return int(str(info["process_id"]))


async def _info(host: str, port: int, section: str) -> dict[str, object]:
    info = await _call(host, port, "INFO", section)  # redis-py parses INFO into a dict
    assert isinstance(info, dict)
    return info


def replica_of(nodes: list[Node], master: Node) -> Node:
    """The first replica of `master`."""
    return next(node for node in nodes if node.master_id == master.node_id)


async def replicated_and_ok(host: str, port: int, *, masters: int = 3) -> bool:
    """True when the cluster has `masters` masters serving slots, each with a replica whose link
    is up, and every node says cluster_state:ok."""
    try:
        nodes = await cluster_nodes(host, port)
        serving = [n for n in nodes if n.master_id is None and n.serves_slots and not n.failed]
        if len(serving) != masters or any(node.failed for node in nodes):
            return False
        for master in serving:
            replicas = [n for n in nodes if n.master_id == master.node_id]
            if not replicas:
                return False
            for replica in replicas:
                link = await _info(replica.host, replica.port, "replication")
                if link.get("master_link_status") != "up":
                    return False
        for node in nodes:
            state = await _call(node.host, node.port, "CLUSTER", "INFO")
            if b"cluster_state:ok" not in (state if isinstance(state, bytes) else b""):
                return False
    except RedisError:
        return False
    return True
