"""The orders service's source of truth: companies and their orders in the demo's database."""

from __future__ import annotations

import json
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

    async def advance_status(self, connection: AsyncConnection, order_id: str) -> StatusChange:
        """Move an order to its next status and bump its company's version, in the caller's
        transaction (no commit here).

        connection: in a transaction the caller commits or rolls back.
        order_id: the order to advance.
        """
        # One statement reads and moves the status (the order's row lock, its write lock on
        # SQLite, holds off any other write of it until this transaction ends).
        company_id, stored = (
            await connection.execute(
                update(ORDERS)
                .where(ORDERS.c.id == order_id)
                .values(status=case(NEXT_STATUS, value=ORDERS.c.status))
                .returning(ORDERS.c.company_id, ORDERS.c.status)
            )
        ).one()
        new = cast(OrderStatus, stored)
        old = STATUS_CYCLE[STATUS_CYCLE.index(new) - 1]
        version = (
            await connection.execute(
                update(COMPANIES)
                .where(COMPANIES.c.id == company_id)
                .values(version=COMPANIES.c.version + 1)
                .returning(COMPANIES.c.version)
            )
        ).scalar_one()
        return StatusChange(order_id, company_id, old, new, version)


def page_version(page: bytes) -> int:
    """The data version a cached page was built from."""
    version: int = json.loads(page)["version"]
    return version
