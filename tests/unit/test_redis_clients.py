"""The one construction of redis-py clients: the target's options reach the connections, the
retry policy is the caller's, and the password never shows in a client's repr."""

from __future__ import annotations

from typing import cast

from pydantic import SecretStr
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, SSLConnection
from redis.exceptions import ConnectionError, TimeoutError

from contracts import RedisTarget, TlsSettings
from contracts.redis_clients import RedisClient, redis_client, redis_node_client
from producers import connect_redis

PASSWORD = "s3cret-redis-pw"
TARGET = RedisTarget(
    name="eu",
    url="redis://127.0.0.1:6379/2",
    username="cache",
    password=SecretStr(PASSWORD),
    socket_timeout_s=0.75,
    max_connections=9,
)


def _new_connection(client: RedisClient) -> Connection:
    """A connection as the pool of `client`, a standalone client, makes them (not connected)."""
    assert isinstance(client, Redis)
    # redis-py leaves `ConnectionPool.make_connection` unannotated; a URL's pool makes TCP ones.
    connection = client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
    return cast(Connection, connection)


async def test_a_standalone_client_carries_the_targets_options() -> None:
    client = redis_client(TARGET)
    try:
        assert isinstance(client, Redis)
        connection = _new_connection(client)
        assert (connection.host, connection.port, connection.db) == ("127.0.0.1", 6379, 2)
        assert (connection.username, connection.password) == ("cache", PASSWORD)
        assert connection.socket_timeout == connection.socket_connect_timeout == 0.75
        assert client.connection_pool.max_connections == 9
        assert PASSWORD not in repr(client) and PASSWORD not in repr(connection)
    finally:
        await client.aclose()


async def test_only_the_caller_that_asks_retries_a_closed_connection() -> None:
    plain, retrying = redis_client(TARGET), redis_client(TARGET, retry_closed_connection=True)
    try:
        assert _new_connection(plain).retry.get_retries() == 0
        retry = _new_connection(retrying).retry
        assert retry.get_retries() == 1
        assert ConnectionError in retry._supported_errors
        assert TimeoutError not in retry._supported_errors, "a timeout must not be retried"
        # The cache client is the one that asks for it.
        cache = connect_redis(TARGET)
        assert _new_connection(cache).retry.get_retries() == 1
        await cache.aclose()
    finally:
        await plain.aclose()
        await retrying.aclose()


async def test_a_cluster_target_gets_a_cluster_client_and_tls_reaches_every_node() -> None:
    target = TARGET.model_copy(
        update={
            "url": "rediss://127.0.0.1:7000",
            "cluster": True,
            "tls": TlsSettings(ca_file="/etc/ca.pem", check_hostname=False),
        }
    )
    client = redis_client(target)
    node = redis_node_client(target, "10.0.0.2", 7001)
    try:
        assert isinstance(client, RedisCluster)
        assert PASSWORD not in repr(client)
        connection = _new_connection(node)
        assert isinstance(connection, SSLConnection)
        assert (connection.host, connection.port) == ("10.0.0.2", 7001)
        assert connection.ssl_context.ca_certs == "/etc/ca.pem"
        assert connection.ssl_context.check_hostname is False
        assert connection.password == PASSWORD and PASSWORD not in repr(node)
    finally:
        await client.aclose()
        await node.aclose()


async def test_a_node_of_a_plain_target_is_not_tls() -> None:
    node = redis_node_client(TARGET, "10.0.0.2", 7001)
    try:
        assert not isinstance(_new_connection(node), SSLConnection)
    finally:
        await node.aclose()
