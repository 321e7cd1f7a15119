"""A paced stream of `OrderCreated` events for fault tests, each proven by its own namespace."""

from __future__ import annotations

import asyncio
import uuid

from contracts.events import EventEnvelope
from contracts.example_orders import ORDER, OrderCreated
from contracts.namespaces import BoundNamespace
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
        self.company_id = f"c-{self.run_id}"
        """The company every order belongs to: each event purges its orders page too."""
        self.published: dict[str, BoundNamespace] = {}
        """Event id -> the namespace its event purges, in publishing order."""
        self.writes = 0
        """How many writes are committed: counted before each event is published, as a service
        commits its write before publishing (the version a reader's source of truth shows)."""

    async def run(self) -> None:
        """Publish every event (each acknowledged before the next)."""
        for i in range(self.events):
            order_id = self.order_id(i)
            self.writes += 1
            envelope = await self.publisher.publish(
                OrderCreated(order_id=order_id, company_id=self.company_id, total_cents=i),
                tenant="acme",
                aggregate_version=1,
            )
            self.published[str(envelope.event_id)] = ORDER.bind(order_id=order_id)
            await asyncio.sleep(self.pace_s)  # pacing the stream, not synchronisation

    async def published_at_least(self, count: int) -> bool:
        """Whether `count` events are published (a `wait_until` condition)."""
        return len(self.published) >= count

    def order_id(self, index: int) -> str:
        """The order the `index`-th event (from 0) creates."""
        return f"o-{self.run_id}-{index}"


async def publish_company_order(publisher: EventPublisher, company_id: str) -> EventEnvelope:
    """Publish one OrderCreated of `company_id` (it purges the company's orders namespace);
    returns its envelope."""
    return await publisher.publish(
        OrderCreated(order_id=f"o-{company_id}", company_id=company_id, total_cents=1),
        tenant="acme",
        aggregate_version=1,
    )
