"""Example-domain events published for the integration tests."""

from __future__ import annotations

import uuid

from contracts.example_orders import OrderCreated
from producers import EventPublisher


async def publish_orders(publisher: EventPublisher, count: int) -> None:
    """Publish `count` OrderCreated events of a fresh run, each of its own order and company
    (so they spread over the partitions)."""
    run = uuid.uuid4().hex[:8]
    for i in range(count):
        await publisher.publish(
            OrderCreated(order_id=f"o-{run}-{i}", company_id=f"c-{run}-{i}", total_cents=i),
            tenant="acme",
            aggregate_version=1,
        )
