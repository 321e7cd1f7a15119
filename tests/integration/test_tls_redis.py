"""The project's own Redis clients over TLS on real redis-servers that serve TLS only (a
standalone server, one that asks for client certificates, and a Redis Cluster whose bus and
replication are TLS too): the invalidator's purge targets and CacheClient, built from
RedisTarget settings with TlsSettings and a least-privilege ACL user whose password is a
SecretStr."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest
from pydantic import SecretStr
from redis.asyncio import RedisCluster
from redis.exceptions import NoPermissionError

from contracts import BoundNamespace, ConnectionSecurityError, RedisTarget, TlsSettings
from contracts.connection_checks import check_redis
from contracts.example_orders import COMPANY_ORDERS
from contracts.layout import entry_key, generation_key
from invalidator.failures import FailureKind, failure_kind
from invalidator.planner import grouped
from invalidator.replication import ReplicasNotReachedError
from invalidator.targets import RegionTargets
from producers import CacheClient, Fetched, Source, connect_redis
from tests.certificates import Certificates
from tests.integration.tls_cluster import TlsRedisCluster
from tests.integration.tls_redis import TlsRedisServer, acl_users
from tests.integration.us_cluster import master_port
from tests.waiting import wait_until


@pytest.fixture(scope="module")
async def mutual_tls_redis(
    certificates: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TlsRedisServer]:
    """The same, also requiring a client certificate signed by the CA."""
    server = TlsRedisServer(
        tmp_path_factory.mktemp("mutual-tls-redis"),
        ca=certificates.ca,
        server=certificates.server,
        admin_client_cert=certificates.client,
    )
    await server.start()
    yield server
    await server.stop()


def _company() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


async def _loads_then_purges_then_loads(cache_as: RedisTarget, invalidator_as: RedisTarget) -> None:
    """Fill and hit as the cache user, purge as the invalidator user, then miss: both clients
    talked to servers that have no plaintext port."""
    namespace = COMPANY_ORDERS.bind(company_id=_company())
    cache_redis = connect_redis(cache_as)
    cache = CacheClient(cache_redis)
    targets = RegionTargets("eu", [invalidator_as])
    loads = 0

    async def load() -> bytes:
        nonlocal loads
        loads += 1
        return f"orders-{loads}".encode()

    try:
        assert await cache.fetch(namespace, "page:1", load) == Fetched(b"orders-1", Source.LOADED)
        assert await cache.fetch(namespace, "page:1", load) == Fetched(b"orders-1", Source.HIT)
        assert await targets.purge(grouped([namespace])) == {}
        assert await cache.fetch(namespace, "page:1", load) == Fetched(b"orders-2", Source.LOADED)
    finally:
        await targets.close()
        await cache_redis.aclose()


async def test_cache_client_and_purge_targets_work_over_tls(
    tls_redis: TlsRedisServer, certificates: Certificates
) -> None:
    tls = TlsSettings(ca_file=str(certificates.ca))
    await _loads_then_purges_then_loads(
        tls_redis.target("cache", tls=tls), tls_redis.target("invalidator", tls=tls)
    )


async def test_client_certificates_from_tls_settings_pass_mutual_tls(
    mutual_tls_redis: TlsRedisServer, certificates: Certificates
) -> None:
    tls = TlsSettings(
        ca_file=str(certificates.ca),
        cert_file=str(certificates.client.cert),
        key_file=str(certificates.client.key),
    )
    await _loads_then_purges_then_loads(
        mutual_tls_redis.target("cache", tls=tls), mutual_tls_redis.target("invalidator", tls=tls)
    )


@pytest.fixture(scope="module")
async def tls_cluster(
    certificates: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TlsRedisCluster]:
    """A Redis Cluster, 3 masters and 3 replicas, TLS only: clients, bus and replication."""
    cluster = TlsRedisCluster(
        tmp_path_factory.mktemp("tls-cluster"), ca=certificates.ca, server=certificates.server
    )
    await cluster.start()
    yield cluster
    await cluster.stop()


async def test_cache_client_and_purges_acknowledged_by_replicas_work_on_a_tls_cluster(
    tls_cluster: TlsRedisCluster, certificates: Certificates
) -> None:
    """The purge waits until a replica has it (WAIT): replication runs over TLS too."""
    tls = TlsSettings(ca_file=str(certificates.ca))
    await _loads_then_purges_then_loads(
        tls_cluster.target("cache", tls=tls),
        tls_cluster.target("invalidator", tls=tls, min_replicas_acked=1),
    )


async def test_a_purge_acknowledged_by_replicas_needs_wait_in_the_acl(
    tls_redis: TlsRedisServer, certificates: Certificates
) -> None:
    """The invalidator user of deploy/redis-acl.conf may WAIT (a standalone server has no replica
    to acknowledge: that is a lagging replica, an outage); the same user without +wait gets a
    permission defect, reported and retried as such, never taken for a lagging replica."""
    tls = TlsSettings(ca_file=str(certificates.ca))
    namespaces = grouped([COMPANY_ORDERS.bind(company_id=_company())])
    acked = {"min_replicas_acked": 1, "replicas_timeout_ms": 100}
    as_invalidator = tls_redis.target("invalidator", tls=tls).model_copy(update=acked)
    user, password = f"no-wait-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin = tls_redis.admin()
    rules = next(
        line.split()[2:]
        for line in acl_users(tls_redis.passwords)
        if line.startswith("user invalidator ")
    )
    assert "+wait" in rules
    without = [rule for rule in rules if rule != "+wait" and not rule.startswith(">")]
    await admin.execute_command("ACL", "SETUSER", user, *without, f">{password}")  # type: ignore[no-untyped-call]
    without_wait = as_invalidator.model_copy(
        update={"name": "no-wait", "username": user, "password": SecretStr(password)}
    )
    targets = RegionTargets("eu", [as_invalidator, without_wait])
    try:
        failed = await targets.purge(namespaces)
    finally:
        await targets.close()
        await admin.acl_deluser(user)
        await admin.aclose()
    assert isinstance(failed[as_invalidator.name], ReplicasNotReachedError)
    assert failure_kind(failed[as_invalidator.name]) is FailureKind.OUTAGE
    assert isinstance(failed["no-wait"], NoPermissionError)
    assert failure_kind(failed["no-wait"]) is FailureKind.DEFECT


async def test_least_privilege_users_on_a_tls_cluster_work_after_a_failover(
    tls_cluster: TlsRedisCluster, certificates: Certificates
) -> None:
    """Each user may do only its part (the invalidator cannot read an entry, the cache client
    cannot write outside the layout), and both go on after a master is killed and its replica
    promoted. Runs last in this module: the Cluster keeps one master without a replica."""
    tls = TlsSettings(ca_file=str(certificates.ca))
    cache_redis = cast(RedisCluster, connect_redis(tls_cluster.target("cache", tls=tls)))
    cache = CacheClient(cache_redis)
    invalidator_as = tls_cluster.target("invalidator", tls=tls)
    targets = RegionTargets("eu", [invalidator_as])
    invalidator_redis = cast(RedisCluster, connect_redis(invalidator_as))
    watchdog_redis = cast(RedisCluster, connect_redis(tls_cluster.target("watchdog", tls=tls)))
    await cache_redis.initialize()
    namespace = next(  # on a master other than the seed, which the clients keep using
        bound
        for bound in (COMPANY_ORDERS.bind(company_id=_company()) for _ in range(100))
        if master_port(cache_redis, generation_key(bound)) != tls_cluster.ports[0]
    )
    master = master_port(cache_redis, generation_key(namespace))
    loads = 0

    async def load() -> bytes:
        nonlocal loads
        loads += 1
        return f"orders-{loads}".encode()

    async def purged() -> bool:
        return await targets.purge(grouped([namespace])) == {}

    try:
        assert await cache.fetch(namespace, "page:1", load) == Fetched(b"orders-1", Source.LOADED)
        await _assert_nothing_more(invalidator_redis, cache_redis, watchdog_redis, namespace)

        await tls_cluster.kill(master)
        await wait_until(purged, within=30, what="a purge after the replica took over")
        assert await cache.fetch(namespace, "page:1", load) == Fetched(b"orders-2", Source.LOADED)
        assert await cache.fetch(namespace, "page:1", load) == Fetched(b"orders-2", Source.HIT)
        assert master_port(cache_redis, generation_key(namespace)) != master
        # The promoted replica holds the same users, with the same limits.
        await _assert_nothing_more(invalidator_redis, cache_redis, watchdog_redis, namespace)
    finally:
        await targets.close()
        await invalidator_redis.aclose()
        await cache_redis.aclose()
        await watchdog_redis.aclose()


async def test_a_server_certificate_rotates_to_a_new_ca_without_a_restart(
    certificates: Certificates, tmp_path: Path
) -> None:
    """The rotation deployment.md describes: clients first trust both CAs (a bundle in
    `tls.ca_file`), then the server swaps its certificate (CONFIG SET, no restart). Clients that
    trust the bundle go on, through new connections too; one that trusts only the old CA is
    refused on its next connection, naming the unknown CA."""
    server = TlsRedisServer(tmp_path / "redis", ca=certificates.ca, server=certificates.server)
    await server.start()
    bundle = TlsSettings(ca_file=str(certificates.ca_bundle()))
    old_only = server.target("invalidator", tls=TlsSettings(ca_file=str(certificates.ca)))
    admin = server.admin()
    try:
        await _loads_then_purges_then_loads(
            server.target("cache", tls=bundle), server.target("invalidator", tls=bundle)
        )
        await check_redis(old_only)
        rotated = certificates.rotated
        await admin.execute_command(  # type: ignore[no-untyped-call]
            "CONFIG", "SET", "tls-cert-file", str(rotated.cert), "tls-key-file", str(rotated.key)
        )
        await _loads_then_purges_then_loads(
            server.target("cache", tls=bundle), server.target("invalidator", tls=bundle)
        )
        with pytest.raises(ConnectionSecurityError, match="unknown CA"):
            await check_redis(old_only)
    finally:
        await admin.aclose()
        await server.stop()


async def _assert_nothing_more(
    invalidator_redis: RedisCluster,
    cache_redis: RedisCluster,
    watchdog_redis: RedisCluster,
    namespace: BoundNamespace,
) -> None:
    """What the standalone least-privilege tests refuse, on the Cluster: the invalidator cannot
    read an entry; the watchdog may read a generation and nothing else; no user may flush,
    write outside the layout or read the configuration."""
    with pytest.raises(NoPermissionError):
        await invalidator_redis.get(entry_key(namespace, "page:1"))
    assert await watchdog_redis.get(generation_key(namespace)) is not None
    with pytest.raises(NoPermissionError):
        await watchdog_redis.get(entry_key(namespace, "page:1"))
    with pytest.raises(NoPermissionError):
        await watchdog_redis.set(generation_key(namespace), b"x")
    for client in (invalidator_redis, cache_redis, watchdog_redis):
        with pytest.raises(NoPermissionError):
            await client.flushall()
        with pytest.raises(NoPermissionError):
            await client.set(f"{{outside}}:{_company()}", b"x")
        with pytest.raises(NoPermissionError):
            await client.config_get("*")
