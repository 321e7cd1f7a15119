"""A paced stream of `OrderCreated` events for fault tests, each proven by its own namespace."""

from __future__ import annotations

import asyncio
import uuid

from contracts.catalogue import BoundNamespace
from contracts.orders import ORDER, OrderCreated
from producers import EventPublisher


class OrderStream:
    """Publishes `events` new orders, `pace_s` apart; remembers event id -> `order:<id>`.

    Each event creates its own order, so the order's generation token proves its purge.
    """

    def __init__(self, publisher: EventPublisher, *, events: int, pace_s: float) -> None:
        """publisher: a started publisher; events: how many; pace_s: the pause between two."""
        self.publisher = publisher
        self.events = events
        self.pace_s = pace_s
        self.run_id = uuid.uuid4().hex[:8]
        self.published: dict[str, BoundNamespace] = {}
        """Event id -> the namespace its event purges, in publishing order."""

    async def run(self) -> None:
        """Publish every event (each acknowledged before the next)."""
        for i in range(self.events):
            order_id = f"o-{self.run_id}-{i}"
            envelope = await self.publisher.publish(
                OrderCreated(order_id=order_id, company_id=f"c-{self.run_id}", total_cents=i),
                tenant="acme",
                aggregate_version=1,
            )
            self.published[str(envelope.event_id)] = ORDER.bind(order_id=order_id)
            await asyncio.sleep(self.pace_s)  # pacing the stream, not synchronisation

    async def published_at_least(self, count: int) -> bool:
        """Whether `count` events are published (a `wait_until` condition)."""
        return len(self.published) >= count
