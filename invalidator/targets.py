"""A region's Redis targets: purge on all of them concurrently, remember which succeeded."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from contracts.connections import RedisTarget
from contracts.redis_clients import RedisClient, redis_client
from invalidator.planner import NamespaceKeys
from invalidator.purge import purge_on_target
from invalidator.replication import ReplicaAck


class RegionTargets:
    """The Redis deployments (standalone or Cluster) that one region's invalidator purges."""

    def __init__(self, region: str, targets: Sequence[RedisTarget]) -> None:
        """region: the region's name; targets: its Redis deployments."""
        self.region = region
        self.targets = tuple(targets)
        # A failed purge is retried by the loop, batch and all, with backoff: the clients
        # themselves do not retry a closed connection.
        self._clients: dict[str, RedisClient] = {
            target.name: redis_client(target) for target in self.targets
        }
        self._acks = {target.name: ReplicaAck.of(target) for target in self.targets}

    def names(self) -> set[str]:
        """The names of every target."""
        return set(self._clients)

    async def purge(
        self, by_namespace: NamespaceKeys, *, only: set[str] | None = None
    ) -> dict[str, Exception]:
        """Purge the namespaces on every target (or on `only`) in parallel.

        by_namespace: each declaration with its rendered keys (`invalidator.planner.grouped`
            makes it of bound namespaces).
        Returns each target that failed with its error (`invalidator.failures` says what it
        means); logging them is the caller's.
        """
        names = sorted(self._clients if only is None else only)
        results = await asyncio.gather(
            *(
                purge_on_target(self._clients[name], by_namespace, ack=self._acks[name])
                for name in names
            ),
            return_exceptions=True,
        )
        failed = {}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                failed[name] = result
        return failed

    async def read_only_count(self, set_key: str) -> int:
        """SCARD of `set_key` on the first target (for dry runs: nothing is written)."""
        client = self._clients[self.targets[0].name]
        return int(await client.scard(set_key))

    async def close(self) -> None:
        """Close every client."""
        for client in self._clients.values():
            await client.aclose()
