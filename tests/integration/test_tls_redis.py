"""The project's own Redis clients over TLS on a real redis-server that serves TLS only: the
invalidator's purge targets and CacheClient, built from RedisTarget settings with TlsSettings and
a least-privilege ACL user whose password is a SecretStr."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from contracts import TlsSettings
from contracts.example_orders import COMPANY_ORDERS
from invalidator.planner import grouped
from invalidator.targets import RegionTargets
from producers import CacheClient, Fetched, Source, connect_redis
from tests.certificates import Certificates
from tests.integration.tls_redis import TlsRedisServer


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


async def _loads_then_purges_then_loads(server: TlsRedisServer, tls: TlsSettings) -> None:
    """Fill and hit as the cache user, purge as the invalidator user, then miss: both clients
    talked to `server`, which has no plaintext port."""
    namespace = COMPANY_ORDERS.bind(company_id=_company())
    cache_redis = connect_redis(server.target("cache", tls=tls))
    cache = CacheClient(cache_redis)
    targets = RegionTargets("eu", [server.target("invalidator", tls=tls)])
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
    await _loads_then_purges_then_loads(tls_redis, TlsSettings(ca_file=str(certificates.ca)))


async def test_client_certificates_from_tls_settings_pass_mutual_tls(
    mutual_tls_redis: TlsRedisServer, certificates: Certificates
) -> None:
    tls = TlsSettings(
        ca_file=str(certificates.ca),
        cert_file=str(certificates.client.cert),
        key_file=str(certificates.client.key),
    )
    await _loads_then_purges_then_loads(mutual_tls_redis, tls)
