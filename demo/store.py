"""The orders service's source of truth: companies and their orders in the demo's database."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Column, Integer, MetaData, String, Table, case, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.example_orders import STATUS_CYCLE, OrderStatus
from producers.outbox import create_outbox_table

NEXT_STATUS = dict(zip(STATUS_CYCLE, STATUS_CYCLE[1:] + STATUS_CYCLE[:1], strict=True))

metadata = MetaData()

COMPANIES = Table(
    "companies",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("version", Integer, nullable=False),
)
"""A company's data version: bumped by every write to one of its orders."""

ORDERS = Table(
    "orders",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("company_id", String(16), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("total_cents", Integer, nullable=False),
)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A status change made in a transaction: what the event needs, and the company's new data
    version."""

    order_id: str
    company_id: str
    old_status: OrderStatus
    new_status: OrderStatus
    company_version: int


class OrdersStore:
    """Companies with orders; every write bumps the company's version in the same transaction."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        companies: int,
        orders_per_company: int,
        reader: AsyncEngine | None = None,
    ) -> None:
        """engine: the demo's database (empty; `create` makes and seeds the tables).
        companies, orders_per_company: the size of the seeded data set.
        reader: the engine `order_page` reads on (default: `engine`).
        """
        self.engine = engine
        self.reader = engine if reader is None else reader
        self.company_ids = [f"c{n:04d}" for n in range(companies)]
        self.order_ids = {
            company: [f"{company}-o{n:03d}" for n in range(orders_per_company)]
            for company in self.company_ids
        }

    async def create(self) -> None:
        """Create the outbox table and the store's own, and seed the orders (all `placed`)."""
        await create_outbox_table(self.engine)
        async with self.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            await connection.execute(
                insert(COMPANIES), [{"id": c, "version": 0} for c in self.company_ids]
            )
            await connection.execute(
                insert(ORDERS),
                [
                    {
                        "id": order,
                        "company_id": company,
                        "status": "placed",
                        "total_cents": 1000 + n,
                    }
                    for company, orders in self.order_ids.items()
                    for n, order in enumerate(orders)
                ],
            )

    async def order_page(self, company_id: str) -> bytes:
        """The cached read model: a company's order list with the company's data version."""
        # One statement, so the version and the rows come from one snapshot.
        async with self.reader.connect() as connection:
            rows = (
                await connection.execute(
                    select(COMPANIES.c.version, ORDERS.c.id, ORDERS.c.status, ORDERS.c.total_cents)
                    .join(ORDERS, ORDERS.c.company_id == COMPANIES.c.id)
                    .where(COMPANIES.c.id == company_id)
                    .order_by(ORDERS.c.id)
                )
            ).all()
        version = rows[0].version if rows else 0
        orders = [[row.id, row.status, row.total_cents] for row in rows]
        return json.dumps({"version": version, "orders": orders}).encode()

    async def advance_statuses(
        self, connection: AsyncConnection, order_ids: Sequence[str]
    ) -> list[StatusChange]:
        """Move each order to its next status and bump its company's version, in the caller's
        transaction (no commit here); the changes in the order of `order_ids`.

        connection: in a transaction the caller commits or rolls back.
        order_ids: the orders to advance, of distinct companies (each company's version moves
            once).
        """
        # One statement per table, whatever the number of orders: on SQLite each statement is
        # four trips to the driver's thread, the cost of a write transaction.
        # The update reads and moves the statuses (the orders' row locks, the write lock on
        # SQLite, hold off any other write of them until this transaction ends).
        moved = {
            row.id: (row.company_id, cast(OrderStatus, row.status))
            for row in await connection.execute(
                update(ORDERS)
                .where(ORDERS.c.id.in_(order_ids))
                .values(status=case(NEXT_STATUS, value=ORDERS.c.status))
                .returning(ORDERS.c.id, ORDERS.c.company_id, ORDERS.c.status)
            )
        }
        companies = [moved[order_id][0] for order_id in order_ids]
        if len(set(companies)) != len(order_ids):
            raise ValueError(f"orders of distinct companies only, not {list(order_ids)}")
        versions: dict[str, int] = {
            row.id: row.version
            for row in await connection.execute(
                update(COMPANIES)
                .where(COMPANIES.c.id.in_(companies))
                .values(version=COMPANIES.c.version + 1)
                .returning(COMPANIES.c.id, COMPANIES.c.version)
            )
        }
        changes = []
        for order_id in order_ids:
            company_id, new = moved[order_id]
            old = STATUS_CYCLE[STATUS_CYCLE.index(new) - 1]
            changes.append(StatusChange(order_id, company_id, old, new, versions[company_id]))
        return changes


def page_version(page: bytes) -> int:
    """The data version a cached page was built from."""
    version: int = json.loads(page)["version"]
    return version
