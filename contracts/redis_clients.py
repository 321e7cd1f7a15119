"""The redis-py clients of a `RedisTarget`: the one place they are constructed.

The cache client, the invalidator's purge targets and the benchmarks all connect here, so the
credentials, TLS, timeouts, pool size and the standalone-or-Cluster choice cannot drift between
them. Building a client does no I/O: it connects on first use.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError

from contracts.connections import RedisTarget

RedisClient = Redis | RedisCluster
"""A standalone or Cluster asyncio client of redis-py."""


def redis_client(target: RedisTarget, *, retry_closed_connection: bool = False) -> RedisClient:
    """A client for `target`: a `RedisCluster` when `target.cluster`, else a `Redis`.

    retry_closed_connection: a standalone client sends a command once more, at once, on a fresh
        connection when its pooled one was closed (a Redis restart closes every one); a timeout
        is not retried, so `socket_timeout_s` still bounds a call. Off: a failed command fails
        (redis-py's default for a client made from a URL), for callers that retry on their own.
        A Cluster client always has redis-py's cluster retries, which also reload the slot map.
    """
    options = target.client_kwargs()
    if target.cluster:
        return RedisCluster.from_url(target.url, **options)
    if retry_closed_connection:
        options["retry"] = Retry(NoBackoff(), retries=1, supported_errors=(ConnectionError,))
    client: Redis = Redis.from_url(target.url, **options)
    return client


def redis_node_client(target: RedisTarget, host: str, port: int) -> Redis:
    """A standalone client for one server of `target` (a Cluster's master, for commands that
    act on one node: CONFIG SET, keyspace notifications), with the target's credentials, TLS
    (`rediss://`) and timeouts."""
    return Redis(
        host=host, port=port, ssl=target.url.startswith("rediss://"), **target.client_kwargs()
    )
