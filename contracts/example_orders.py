"""The example domain: company orders, their events and the namespaces they purge.

The demo, the tests and the benchmarks choose it explicitly (`EXAMPLE_CATALOGUE`); it is never
a default, so an invalidator started without `INVALIDATOR_CATALOGUE` stops instead of purging
this domain. A service team declares its own catalogue the same way in its own module.
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import Field

from contracts import topics
from contracts.catalogue import Catalogue
from contracts.events import DomainEvent, SafeId
from contracts.namespaces import Namespace, PurgeRule

OrderStatus = Literal["placed", "paid", "shipped", "delivered", "cancelled"]
STATUS_CYCLE: tuple[OrderStatus, ...] = ("placed", "paid", "shipped", "delivered")
"""An order's statuses in the order it goes through them (the demo and the benchmarks move their
orders round this cycle, delivered back to placed)."""


class _OrderEvent(DomainEvent):
    aggregate_type: ClassVar[str] = "order"
    aggregate_id_field: ClassVar[str] = "order_id"
    topic: ClassVar[str] = topics.ORDERS

    order_id: SafeId
    company_id: SafeId


class OrderCreatedV1(_OrderEvent):
    """A new order was placed (version 1: before orders carried a status and a currency)."""

    event_type: ClassVar[str] = "orders.OrderCreated"
    schema_version: ClassVar[int] = 1

    total_cents: int = Field(ge=0)

    def upcast(self) -> OrderCreated:
        """Version 1 orders were all placed, in euros."""
        return OrderCreated(
            order_id=self.order_id,
            company_id=self.company_id,
            total_cents=self.total_cents,
            status="placed",
            currency="EUR",
        )


class OrderCreated(_OrderEvent):
    """A new order was placed."""

    event_type: ClassVar[str] = "orders.OrderCreated"
    schema_version: ClassVar[int] = 2

    status: OrderStatus = "placed"
    total_cents: int = Field(ge=0)
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")


class OrderUpdated(_OrderEvent):
    """An order's contents changed; `previous_company_id` is set when it moved company."""

    event_type: ClassVar[str] = "orders.OrderUpdated"

    total_cents: int = Field(ge=0)
    previous_company_id: SafeId | None = None


class OrderStatusChanged(_OrderEvent):
    """An order moved from one status to another."""

    event_type: ClassVar[str] = "orders.OrderStatusChanged"

    old_status: OrderStatus
    new_status: OrderStatus


class OrderCancelled(_OrderEvent):
    """An order was cancelled."""

    event_type: ClassVar[str] = "orders.OrderCancelled"

    reason: str = Field(max_length=500)


class CompanyRenamed(DomainEvent):
    """A company changed its display name."""

    event_type: ClassVar[str] = "companies.CompanyRenamed"
    aggregate_type: ClassVar[str] = "company"
    aggregate_id_field: ClassVar[str] = "company_id"
    topic: ClassVar[str] = topics.COMPANIES

    company_id: SafeId
    name: str = Field(min_length=1, max_length=200)


ORDER_EVENTS: tuple[type[_OrderEvent], ...] = (
    OrderCreated,
    OrderUpdated,
    OrderStatusChanged,
    OrderCancelled,
)

_BY_COMPANY = {"company_id": "payload.company_id"}
_BY_ORDER = {"order_id": "payload.order_id"}

COMPANY_ORDERS = Namespace(
    name="company_orders",
    template="company:{company_id}:orders",
    owner="orders-team",
    description="The pages of a company's order list.",
    ttl=timedelta(hours=1),
    purged_by=(
        *(PurgeRule(event, _BY_COMPANY) for event in ORDER_EVENTS),
        # An order that moved company leaves the old company's list too.
        PurgeRule(OrderUpdated, {"company_id": "payload.previous_company_id"}),
    ),
)

ORDER = Namespace(
    name="order",
    template="order:{order_id}",
    owner="orders-team",
    description="One order's detail view.",
    ttl=timedelta(hours=6),
    purged_by=tuple(PurgeRule(event, _BY_ORDER) for event in ORDER_EVENTS),
)

COMPANY_ORDER_STATS = Namespace(
    name="company_order_stats",
    template="company:{company_id}:order-stats",
    owner="orders-team",
    description="A company's order counts per status and revenue.",
    ttl=timedelta(minutes=30),
    purged_by=(
        *(PurgeRule(event, _BY_COMPANY) for event in ORDER_EVENTS),
        PurgeRule(OrderUpdated, {"company_id": "payload.previous_company_id"}),
    ),
)

COMPANY_PROFILE = Namespace(
    name="company_profile",
    template="company:{company_id}:profile",
    owner="companies-team",
    description="A company's profile card.",
    ttl=timedelta(hours=12),
    purged_by=(PurgeRule(CompanyRenamed, _BY_COMPANY),),
)

CATALOGUE = Catalogue(
    [COMPANY_ORDERS, ORDER, COMPANY_ORDER_STATS, COMPANY_PROFILE], events=(OrderCreatedV1,)
)
"""The example catalogue."""

EXAMPLE_CATALOGUE = f"{__name__}:CATALOGUE"
"""Where the demo, the tests and the benchmarks point `INVALIDATOR_CATALOGUE` (or `--catalogue`)."""
