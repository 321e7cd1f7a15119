"""The orders service's source of truth: a real SQLite database (in memory)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import cast

from contracts.orders import OrderStatus

STATUS_CYCLE: tuple[OrderStatus, ...] = ("placed", "paid", "shipped", "delivered")


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A committed status change: what the event needs, and the company's new data version."""

    order_id: str
    company_id: str
    old_status: OrderStatus
    new_status: OrderStatus
    company_version: int


class OrdersStore:
    """Companies with orders; every write bumps the company's version in the same transaction."""

    def __init__(self, *, companies: int, orders_per_company: int) -> None:
        """companies, orders_per_company: the size of the seeded data set."""
        self._db = sqlite3.connect(":memory:", isolation_level=None)
        self._db.executescript(
            """
            CREATE TABLE companies (id TEXT PRIMARY KEY, version INTEGER NOT NULL);
            CREATE TABLE orders (
                id TEXT PRIMARY KEY, company_id TEXT NOT NULL, status TEXT NOT NULL,
                total_cents INTEGER NOT NULL
            );
            CREATE INDEX orders_by_company ON orders (company_id);
            """
        )
        self.company_ids = [f"c{n:04d}" for n in range(companies)]
        self.order_ids = {
            company: [f"{company}-o{n:03d}" for n in range(orders_per_company)]
            for company in self.company_ids
        }
        with self._db:
            self._db.executemany(
                "INSERT INTO companies VALUES (?, 0)", [(c,) for c in self.company_ids]
            )
            self._db.executemany(
                "INSERT INTO orders VALUES (?, ?, 'placed', ?)",
                [
                    (order, company, 1000 + n)
                    for company, orders in self.order_ids.items()
                    for n, order in enumerate(orders)
                ],
            )

    def order_page(self, company_id: str) -> bytes:
        """The cached read model: a company's order list with the company's data version."""
        version = self._db.execute(
            "SELECT version FROM companies WHERE id = ?", (company_id,)
        ).fetchone()[0]
        rows = self._db.execute(
            "SELECT id, status, total_cents FROM orders WHERE company_id = ? ORDER BY id",
            (company_id,),
        ).fetchall()
        return json.dumps({"version": version, "orders": rows}).encode()

    def advance_status(self, order_id: str) -> StatusChange:
        """Move an order to its next status and bump its company's version, atomically."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            company_id, stored = self._db.execute(
                "SELECT company_id, status FROM orders WHERE id = ?", (order_id,)
            ).fetchone()
            old = cast(OrderStatus, stored)
            new = STATUS_CYCLE[(STATUS_CYCLE.index(old) + 1) % len(STATUS_CYCLE)]
            self._db.execute("UPDATE orders SET status = ? WHERE id = ?", (new, order_id))
            self._db.execute(
                "UPDATE companies SET version = version + 1 WHERE id = ?", (company_id,)
            )
            version = self._db.execute(
                "SELECT version FROM companies WHERE id = ?", (company_id,)
            ).fetchone()[0]
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return StatusChange(order_id, company_id, old, new, version)


def page_version(page: bytes) -> int:
    """The data version a cached page was built from."""
    version: int = json.loads(page)["version"]
    return version
