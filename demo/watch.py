"""Watching purges from the outside: a namespace's generation token changing in each region."""

from __future__ import annotations

import asyncio
import time

from contracts.catalogue import BoundNamespace
from contracts.layout import generation_key
from producers import RedisClient


class PurgeWatcher:
    """Measures when a purge lands, region by region, by polling the generation key."""

    def __init__(
        self, clients: dict[str, RedisClient], *, poll_s: float = 0.001, give_up_s: float = 30.0
    ) -> None:
        """clients: one Redis client per region.
        poll_s: the polling period (the resolution of the measurement).
        give_up_s: how long to watch before reporting the purge as unconfirmed.
        """
        self.clients = clients
        self.poll_s = poll_s
        self.give_up_s = give_up_s

    async def landed(
        self, namespace: BoundNamespace, before: dict[str, bytes]
    ) -> dict[str, float] | None:
        """Monotonic time at which each region's generation moved off `before[region]`.

        Returns None if some region did not purge within `give_up_s`.
        """
        key = generation_key(namespace)
        landed: dict[str, float] = {}
        deadline = time.monotonic() + self.give_up_s
        while len(landed) < len(before):
            for region, generation in before.items():
                if region not in landed and await self.clients[region].get(key) != generation:
                    landed[region] = time.monotonic()
            if len(landed) < len(before):
                if time.monotonic() > deadline:
                    return None
                await asyncio.sleep(self.poll_s)
        return landed
