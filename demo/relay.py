"""The demo's outbox relay, a task in the demo process, and its lag as the summary reports it.

In the process rather than an `outbox relay` subprocess: the demo's default database is a SQLite
file, which takes one writer at a time. On the writers' own engine (one connection, see
`demo.database`) the relay's marks queue with the writers' transactions (its claims read on a
connection of their own), and a writer's commit wakes it; a relay in another process would
contend for the file's write lock and wait in SQLite's busy handler, and only poll.
The lag is read from the relay's own stats, not from a file rewritten every interval. Its code
is the same `OutboxRelay` that `outbox relay` runs.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.connections import KafkaConnection
from contracts.percentiles import percentile
from producers.outbox import OutboxRelay

POLL_S = 1.0
"""Only the fallback: a commit of the demo's writers (on the relay's engine) wakes the relay at
once, and on PostgreSQL the NOTIFY the writers send after their commits does too."""
SAMPLE_S = 0.1
"""How often the age of the oldest unpublished row is sampled."""
STOP_TIMEOUT_S = 30.0


class RunningRelay:
    """An `OutboxRelay` running as a task, with the largest oldest-unpublished age sampled."""

    def __init__(self, engine: AsyncEngine, kafka: KafkaConnection) -> None:
        """engine: the demo's database (its outbox table); kafka: the brokers."""
        self.relay = OutboxRelay(engine, kafka, poll_interval_s=POLL_S, client_id="orders-demo")
        self.oldest_unpublished_max_s = 0.0
        """The largest age of the oldest unpublished row seen so far, seconds."""
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Connect to Kafka, then relay and sample in the background."""
        await self.relay.start()
        self._tasks = [
            asyncio.create_task(self.relay.run(), name="outbox-relay"),
            asyncio.create_task(self._sample(), name="outbox-relay-lag"),
        ]

    def check_running(self) -> None:
        """Raise if the relay or its sampler has ended (with its error)."""
        for task in self._tasks:
            if task.done():
                error = task.exception()
                raise RuntimeError(f"the outbox relay's {task.get_name()} task ended: {error!r}")

    def delay_ms(self) -> list[float]:
        """Per published row, ms: from its creation in the writer's transaction to its mark,
        after Kafka's acknowledgement (the relay keeps the latest 10,000)."""
        return list(self.relay.stats.delay_ms)

    def line(self) -> str:
        """The relay's part of the demo's per-second line."""
        delays = self.delay_ms()
        return (
            f"relay delay p50 {percentile(delays, 0.5):.1f} ms p99 {percentile(delays, 0.99):.1f} "
            f"ms, oldest unpublished max {1000 * self.oldest_unpublished_max_s:.0f} ms"
        )

    def summary(self) -> dict[str, object]:
        """The relay's figures for the demo's summary."""
        delays = self.delay_ms()
        return {
            "published": self.relay.stats.published,
            "batches": self.relay.stats.batches,
            "publish_failures": self.relay.stats.publish_failures,
            "delay_ms": {
                "p50": round(percentile(delays, 0.5), 2),
                "p99": round(percentile(delays, 0.99), 2),
                "max": round(max(delays, default=0.0), 2),
            },
            "oldest_unpublished_max_s": round(self.oldest_unpublished_max_s, 3),
        }

    async def stop(self) -> None:
        """Stop sampling, let the relay finish the batch in hand, flush and disconnect."""
        relaying, sampling = self._tasks
        sampling.cancel()
        self.relay.stop()
        try:
            await asyncio.wait_for(relaying, timeout=STOP_TIMEOUT_S)
        finally:
            await self.relay.stop_producer()
            # Cancelled here, or ended earlier with an error `check_running` reported.
            await asyncio.gather(sampling, return_exceptions=True)

    async def _sample(self) -> None:
        while True:
            _, age = await self.relay.pending()
            self.oldest_unpublished_max_s = max(self.oldest_unpublished_max_s, age)
            await asyncio.sleep(SAMPLE_S)
