"""The outbox fault tests' write service: an orders table of its own, each row written with its
event's outbox row in one transaction.

A committed row is the proof of a committed write: `committed_orders` reads them back, with the
namespace whose generation token proves the event was purged (`accounting.account`).
"""

from __future__ import annotations

from sqlalchemy import Column, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts import EventEnvelope
from contracts.example_orders import ORDER, OrderStatusChanged
from contracts.namespaces import BoundNamespace
from producers.outbox import add_event, create_outbox_table

SOURCE = "orders-outbox-fault"
ORDERS = Table(
    "fault_orders",
    MetaData(),
    Column("order_id", String(80), primary_key=True),
    Column("run", String(16), nullable=False, index=True),
    Column("event_id", String(36), nullable=False),
)
"""The service's own table: one row per write, with the id of the event the write published."""


def order_id(run: str, n: int) -> str:
    """The order id of a run's `n`th write."""
    return f"o-{run}-{n}"


async def create_tables(engine: AsyncEngine) -> None:
    """The outbox table and the service's own (idempotent)."""
    await create_outbox_table(engine)
    async with engine.begin() as connection:
        await connection.run_sync(ORDERS.metadata.create_all)


async def write_order(connection: AsyncConnection, run: str, n: int) -> EventEnvelope:
    """Insert the run's `n`th order and its event's outbox row in the caller's transaction.

    connection: in a transaction the caller commits or rolls back.
    run: the run's id (prefixes the order ids, so that its namespaces are fresh in Redis).
    n: the write's number in the run.
    """
    order = order_id(run, n)
    envelope = await add_event(
        connection,
        OrderStatusChanged(
            order_id=order, company_id=f"c-{run}-{n % 100}", old_status="placed", new_status="paid"
        ),
        source=SOURCE,
        tenant="acme",
        aggregate_version=1,
    )
    await connection.execute(
        ORDERS.insert().values(order_id=order, run=run, event_id=str(envelope.event_id))
    )
    return envelope


async def committed_orders(engine: AsyncEngine, run: str) -> dict[str, BoundNamespace]:
    """The run's committed writes: event id -> the order namespace its event purges."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(ORDERS.c.order_id, ORDERS.c.event_id).where(ORDERS.c.run == run)
        )
        return {event_id: ORDER.bind(order_id=order) for order, event_id in rows}
