"""The example orders service: list pages cached per region, every write through the outbox."""

from __future__ import annotations

import asyncio

from contracts.events import EventEnvelope
from contracts.example_orders import COMPANY_ORDERS, OrderStatusChanged
from contracts.namespaces import BoundNamespace
from demo.store import OrdersStore, StatusChange
from producers import CacheClient, EventToPublish
from producers.outbox import add_events

PAGE = "page:1"
SOURCE = "orders-demo"
MAX_GROUP = 64
"""The most writes one transaction commits."""


class OrdersService:
    """What a real write service does with this system: read through the cache; write the change
    and its event in one transaction (the transactional outbox), for the relay to publish."""

    def __init__(self, store: OrdersStore, caches: dict[str, CacheClient]) -> None:
        """store: the source of truth (its database holds the outbox table); caches: per region."""
        self.store = store
        self.caches = caches
        self._waiting: list[tuple[str, asyncio.Future[tuple[StatusChange, EventEnvelope]]]] = []
        """Writes waiting for the next transaction."""
        self._committer: asyncio.Task[None] | None = None

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
        here (the relay does).

        order_id: the order to advance; no other write of its company may be in flight.
        """
        # Group commit: the writes that arrive while a transaction runs share the next one.
        # On the demo's SQLite connection a transaction costs a dozen trips to the driver's
        # thread whatever it writes, and one transaction at a time (~25 ms each on a loaded
        # machine) capped the writers near 30/s.
        waiting: asyncio.Future[tuple[StatusChange, EventEnvelope]]
        waiting = asyncio.get_running_loop().create_future()
        self._waiting.append((order_id, waiting))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_waiting(), name="orders-commit")
        return await waiting

    async def _commit_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_GROUP], self._waiting[MAX_GROUP:]
            try:
                committed = await self._commit([order_id for order_id, _ in batch])
            except BaseException as error:
                # Each writer of the batch gets the error (or the cancellation).
                for _, waiting in batch:
                    if not waiting.done():
                        if isinstance(error, Exception):
                            waiting.set_exception(error)
                        else:
                            waiting.cancel()
                if not isinstance(error, Exception):
                    raise
                continue
            for (_, waiting), result in zip(batch, committed, strict=True):
                if not waiting.done():
                    waiting.set_result(result)

    async def _commit(self, order_ids: list[str]) -> list[tuple[StatusChange, EventEnvelope]]:
        async with self.store.engine.begin() as connection:
            changes = await self.store.advance_statuses(connection, order_ids)
            envelopes = await add_events(
                connection,
                [
                    EventToPublish(
                        OrderStatusChanged(
                            order_id=change.order_id,
                            company_id=change.company_id,
                            old_status=change.old_status,
                            new_status=change.new_status,
                        ),
                        tenant="demo",
                        aggregate_version=change.company_version,
                    )
                    for change in changes
                ],
                source=SOURCE,
            )
        return list(zip(changes, envelopes, strict=True))
