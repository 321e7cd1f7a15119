"""Watching purges land from the outside: a namespace's generation key moving off a known token.

Used by the demo and the stale-data harness.

One poller per region reads the generation keys of every namespace with a purge outstanding in
one pipelined round trip, so the cost does not grow with the number of writes in flight. A
landing is timestamped when the reply that showed it arrived: an upper bound of the true moment,
late by at most one polling round.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from producers import RedisClient


@dataclass
class _Outstanding:
    before: bytes | None
    landed: asyncio.Future[float]


class GenerationWatch:
    """Reports, per region, the monotonic time at which a generation key changed."""

    def __init__(self, clients: dict[str, RedisClient], *, poll_s: float = 0.005) -> None:
        """clients: one client per region, used by this watch alone (one command at a time).
        poll_s: the pause between polling rounds while something is outstanding. Each round
            GETs every outstanding key: at 100 writes/s (tens outstanding per region) rounds
            1 ms apart took the demo's event loop from the readers and the writers' commits.
        """
        self._clients = clients
        self._poll_s = poll_s
        self._outstanding: dict[str, dict[str, _Outstanding]] = {r: {} for r in clients}
        self._wake = {region: asyncio.Event() for region in clients}
        self._pollers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start one poller per region."""
        self._pollers = [
            asyncio.create_task(self._poll(region), name=f"generation-watch-{region}")
            for region in self._clients
        ]

    async def stop(self) -> None:
        """Stop the pollers; outstanding watches are cancelled."""
        for task in self._pollers:
            task.cancel()
        for task in self._pollers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for outstanding in self._outstanding.values():
            for watch in outstanding.values():
                watch.landed.cancel()
            outstanding.clear()

    async def landed(
        self, key: str, before: dict[str, bytes | None], *, timeout_s: float
    ) -> dict[str, float] | None:
        """When `key` moved off `before[region]` in each region; None if one did not in time.

        key: a generation key (`{N}:gen`); only one watch per key at a time.
        before: the token each region held before the write.
        timeout_s: how long to wait for every region.
        """
        loop = asyncio.get_running_loop()
        watches = {}
        for region, token in before.items():
            if key in self._outstanding[region]:
                raise RuntimeError(f"{key} is already watched in {region}")
            watches[region] = _Outstanding(token, loop.create_future())
            self._outstanding[region][key] = watches[region]
            self._wake[region].set()
        try:
            async with asyncio.timeout(timeout_s):
                return {region: await watch.landed for region, watch in watches.items()}
        except TimeoutError:
            return None
        finally:
            for region in watches:
                self._outstanding[region].pop(key, None)

    async def _poll(self, region: str) -> None:
        client = self._clients[region]
        outstanding = self._outstanding[region]
        wake = self._wake[region]
        while True:
            if not outstanding:
                wake.clear()
                await wake.wait()
                continue
            # Only the watches registered before the round was sent may be judged by its reply.
            polled = list(outstanding.items())
            pipeline = client.pipeline(transaction=False)
            for key, _ in polled:
                pipeline.get(key)
            tokens = await pipeline.execute()
            seen_at = time.monotonic()
            for (key, watch), token in zip(polled, tokens, strict=True):
                if token != watch.before and not watch.landed.done():
                    watch.landed.set_result(seen_at)
                    if outstanding.get(key) is watch:
                        del outstanding[key]
            await asyncio.sleep(self._poll_s)
