"""Bulk generation writes (one script call per node) stay correct while a Cluster reshards.

`invalidator.bulk_set` sends the keys of many slots to the node that the client's slot map
names, in one script call. These tests move slots between the masters of a Cluster of their own
(started here, on free ports) while purges run, and check after every purge round that:
- every key reads back (through redirects) as the round's token: no purge was lost;
- once a slot has moved, its old node holds no key of it: nothing was written on the wrong
  node (a stray copy would come back to life if the slot ever moved back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from contracts.layout import generation_key_of
from invalidator.bulk_set import KeySetting, set_keys

TTL_MS = 600_000


def _free_port_pair() -> int:
    """A port p such that p and its Cluster bus port p + 10000 are both free."""
    for _ in range(200):
        port = random.randint(41000, 44999)
        with contextlib.ExitStack() as held:
            try:
                for candidate in (port, port + 10000):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair in 41000-44999 (+10000)")


def _redis_cli(*arguments: str) -> str:
    result = subprocess.run(
        ["redis-cli", *arguments], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"redis-cli {' '.join(arguments)}: {result.stderr or result.stdout}")
    return result.stdout


@pytest.fixture
def cluster_ports(tmp_path: Path) -> Iterator[list[int]]:
    """A fresh 3-master Redis Cluster of this test alone; its client ports."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        raise RuntimeError("redis-server and redis-cli are needed: apt-get install redis-server")
    ports = [_free_port_pair() for _ in range(3)]
    servers = []
    try:
        for port in ports:
            servers.append(
                subprocess.Popen(
                    [
                        "redis-server",
                        "--port", str(port),
                        "--bind", "127.0.0.1",
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", f"nodes-{port}.conf",
                        "--dir", str(tmp_path),
                        "--save", "",
                        "--appendonly", "no",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        deadline = time.monotonic() + 20
        for port in ports:
            while (
                subprocess.run(
                    ["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False
                ).stdout.strip()
                != b"PONG"
            ):
                assert time.monotonic() < deadline, f"redis-server on {port} did not start"
                time.sleep(0.05)
        _redis_cli(
            "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
            "--cluster-replicas", "0", "--cluster-yes",
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not all(
            "cluster_state:ok" in _redis_cli("-p", str(p), "cluster", "info") for p in ports
        ):
            assert time.monotonic() < deadline, "the test cluster did not reach cluster_state:ok"
            time.sleep(0.05)
        yield ports
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()


async def _command(node: Redis, *command: str | int | bytes) -> Any:
    """`command`'s reply from `node`, as redis-py parses it (a reply's type depends on the
    command)."""
    # redis-py leaves `Redis.execute_command` unannotated.
    return await node.execute_command(*command)  # type: ignore[no-untyped-call]


class Reshard:
    """Moves slots from one master to the other step by step, as `redis-cli --cluster
    reshard` does (IMPORTING on the target, MIGRATING on the source, MIGRATE in small batches,
    then SETSLOT NODE on both)."""

    def __init__(self, source: Redis, target: Redis, target_port: int) -> None:
        self.source, self.target, self.target_port = source, target, target_port

    async def ids(self) -> tuple[str, str]:
        return (
            (await _command(self.source, "CLUSTER", "MYID")).decode(),
            (await _command(self.target, "CLUSTER", "MYID")).decode(),
        )

    async def begin(self, slot: int) -> None:
        source_id, target_id = await self.ids()
        await _command(self.target, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        await _command(self.source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)

    async def move_some(self, slot: int, count: int) -> int:
        keys = await _command(self.source, "CLUSTER", "GETKEYSINSLOT", slot, count)
        if keys:
            await _command(
                self.source, "MIGRATE", "127.0.0.1", self.target_port, "", 0, 5000, "KEYS", *keys
            )
        return len(keys)

    async def finish(self, slot: int) -> None:
        while await self.move_some(slot, 100):
            pass
        _, target_id = await self.ids()
        await _command(self.target, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
        await _command(self.source, "CLUSTER", "SETSLOT", slot, "NODE", target_id)


@contextlib.asynccontextmanager
async def _clients(ports: list[int]) -> AsyncIterator[tuple[RedisCluster, Redis, Redis]]:
    cluster = RedisCluster(host="127.0.0.1", port=ports[0])
    await cluster.initialize()
    nodes = (Redis(port=ports[0]), Redis(port=ports[1]))
    try:
        yield cluster, *nodes
    finally:
        await cluster.aclose()
        for node in nodes:
            await node.aclose()


def _keys_in_slots(slots: set[int], per_slot: int) -> list[str]:
    """Generation keys of company namespaces, `per_slot` of them in each of `slots`."""
    found: dict[int, list[str]] = {slot: [] for slot in slots}
    company = 0
    while any(len(keys) < per_slot for keys in found.values()):
        key = generation_key_of(f"company:c{company}:orders")
        keys = found.get(key_slot(key.encode()))
        if keys is not None and len(keys) < per_slot:
            keys.append(key)
        company += 1
    return [key for keys in found.values() for key in keys]


async def _owner_port(cluster_node: Redis, slot: int) -> int:
    for start, end, master, *_ in await _command(cluster_node, "CLUSTER", "SLOTS"):
        if start <= slot <= end:
            return int(master[1])
    raise AssertionError(f"slot {slot} has no owner")


async def _purge_and_check(cluster: RedisCluster, keys: list[str], token: bytes) -> None:
    """One purge round, then every key must read back as this round's token."""
    await set_keys(cluster, [KeySetting(token, TTL_MS, keys)])
    pipeline = cluster.pipeline(transaction=False)
    for key in keys:
        pipeline.get(key)
    values = await pipeline.execute()
    lost = [key for key, value in zip(keys, values, strict=True) if value != token]
    assert not lost, f"round {token!r}: {len(lost)} keys not at the round's token, e.g. {lost[0]}"


async def _assert_no_stray_keys(source: Redis, slots: set[int]) -> None:
    for slot in slots:
        stray = await _command(source, "CLUSTER", "COUNTKEYSINSLOT", slot)
        assert stray == 0, f"the old owner still holds {stray} keys of moved slot {slot}"


async def test_purges_during_each_step_of_a_slot_migration_land_on_the_owner(
    cluster_ports: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="invalidator.bulk_set")
    async with _clients(cluster_ports) as (cluster, first, second):
        # Four slots of the first master, 50 keys in each, plus keys that stay put.
        owned = [s for s in range(0, 16384, 97) if await _owner_port(first, s) == cluster_ports[0]]
        moving = set(owned[:4])
        keys = _keys_in_slots(moving, 50)
        staying = _keys_in_slots({owned[10], owned[11]}, 20)
        everything = keys + staying
        # A key never written before, in a moving slot: missing on the source mid-migration.
        fresh = [key for key in _keys_in_slots(moving, 60) if key not in set(keys)]
        reshard = Reshard(first, second, cluster_ports[1])

        await _purge_and_check(cluster, everything, b"round-1")
        for slot in moving:
            await reshard.begin(slot)
            await reshard.move_some(slot, 25)  # half the slot's keys are on the target now
        caplog.clear()
        await _purge_and_check(cluster, everything, b"round-2")  # the map still says source
        assert "100 keys set through redirects" in caplog.text  # those moved already: ASK
        caplog.clear()
        await _purge_and_check(cluster, everything + fresh, b"round-3")
        assert "140 keys set through redirects" in caplog.text  # and the 40 never written
        for slot in moving:
            await reshard.finish(slot)
        caplog.clear()
        await _purge_and_check(cluster, everything + fresh, b"round-4")  # stale map: MOVED
        assert "240 keys set through redirects" in caplog.text
        await _assert_no_stray_keys(first, moving)
        for slot in moving:
            assert await _owner_port(first, slot) == cluster_ports[1]


async def test_purges_racing_a_reshard_lose_nothing_and_write_nowhere_else(
    cluster_ports: list[int],
) -> None:
    async with _clients(cluster_ports) as (cluster, first, second):
        owned = [s for s in range(0, 16384, 61) if await _owner_port(first, s) == cluster_ports[0]]
        moving = set(owned[:8])
        keys = _keys_in_slots(moving, 40) + _keys_in_slots(set(owned[20:24]), 10)
        reshard = Reshard(first, second, cluster_ports[1])
        moved = asyncio.Event()

        async def migrate() -> None:
            for slot in sorted(moving):
                await reshard.begin(slot)
                for _ in range(1000):
                    if not await reshard.move_some(slot, 3):
                        break
                    await asyncio.sleep(0)  # let purge rounds interleave with every step
                await reshard.finish(slot)
            moved.set()

        migration = asyncio.create_task(migrate())
        rounds = 0
        while not moved.is_set() or rounds < 3:
            rounds += 1
            await _purge_and_check(cluster, keys, f"race-{rounds}".encode())
            if rounds > 2000:
                break
        await migration
        await _purge_and_check(cluster, keys, b"after")
        await _assert_no_stray_keys(first, moving)
        assert rounds >= 3
