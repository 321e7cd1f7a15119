"""The example orders service: list pages cached per region, every write through the outbox."""

from __future__ import annotations

from contracts.events import EventEnvelope
from contracts.example_orders import COMPANY_ORDERS, OrderStatusChanged
from contracts.namespaces import BoundNamespace
from demo.store import OrdersStore, StatusChange
from producers import CacheClient
from producers.outbox import add_event

PAGE = "page:1"
SOURCE = "orders-demo"


class OrdersService:
    """What a real write service does with this system: read through the cache; write the change
    and its event in one transaction (the transactional outbox), for the relay to publish."""

    def __init__(self, store: OrdersStore, caches: dict[str, CacheClient]) -> None:
        """store: the source of truth (its database holds the outbox table); caches: per region."""
        self.store = store
        self.caches = caches

    @staticmethod
    def order_list(company_id: str) -> BoundNamespace:
        """The namespace of a company's order list pages."""
        return COMPANY_ORDERS.bind(company_id=company_id)

    async def list_page(self, region: str, company_id: str) -> tuple[bytes, bool]:
        """A company's order list page as a reader in `region` sees it, and whether it hit."""
        cache = self.caches[region]
        namespace = self.order_list(company_id)
        read = await cache.read(namespace, PAGE)
        if read.value is not None:
            return read.value, True
        page = await self.store.order_page(company_id)
        await cache.store(namespace, PAGE, page, generation=read.generation)
        return page, False

    async def advance_status(self, order_id: str) -> tuple[StatusChange, EventEnvelope]:
        """Commit a status change and its event's outbox row together; nothing is published
        here (the relay does)."""
        async with self.store.engine.begin() as connection:
            change = await self.store.advance_status(connection, order_id)
            envelope = await add_event(
                connection,
                OrderStatusChanged(
                    order_id=change.order_id,
                    company_id=change.company_id,
                    old_status=change.old_status,
                    new_status=change.new_status,
                ),
                source=SOURCE,
                tenant="demo",
                aggregate_version=change.company_version,
            )
        return change, envelope
