"""The example orders service: list pages cached per region, an event published on every write."""

from __future__ import annotations

from contracts.catalogue import BoundNamespace
from contracts.events import EventEnvelope
from contracts.orders import COMPANY_ORDERS, OrderStatusChanged
from demo.store import OrdersStore, StatusChange
from producers import CacheClient, EventPublisher

PAGE = "page:1"


class OrdersService:
    """What a real write service does with this system: read through the cache, publish on write.

    It publishes right after its database commit; a crash in between would lose the event,
    which a transactional outbox closes (not part of the demo).
    """

    def __init__(
        self, store: OrdersStore, publisher: EventPublisher, caches: dict[str, CacheClient]
    ) -> None:
        """store: the source of truth; publisher: the event publisher; caches: per region."""
        self.store = store
        self.publisher = publisher
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
        page = self.store.order_page(company_id)
        await cache.store(namespace, PAGE, page, generation=read.generation)
        return page, False

    async def advance_status(self, order_id: str) -> tuple[StatusChange, EventEnvelope]:
        """Commit a status change, then publish its event."""
        change = self.store.advance_status(order_id)
        envelope = await self.publisher.publish(
            OrderStatusChanged(
                order_id=change.order_id,
                company_id=change.company_id,
                old_status=change.old_status,
                new_status=change.new_status,
            ),
            tenant="demo",
            aggregate_version=change.company_version,
        )
        return change, envelope
