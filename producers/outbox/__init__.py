"""The transactional outbox: events written in the service's own transaction, then relayed.

    async with session.begin():
        session.add(order)                                  # the change
        await add_event(session, OrderStatusChanged(...), source="orders-api",
                        tenant="acme", aggregate_version=order.version)

The event commits with the change or not at all; `outbox relay` (or Debezium, configured by
`outbox debezium-config`) publishes it (at least once,
in id order per aggregate) and marks it. Needs the `outbox` extra (SQLAlchemy 2, asyncpg,
aiosqlite).

The public surface is `__all__`, the `outbox` command (`producers.outbox.cli`) and
`producers.outbox.debezium` (the Debezium connector's configuration); the other modules are the
implementation.
"""

from producers.outbox.relay import OutboxRelay, RelayStats
from producers.outbox.settings import RelaySettings
from producers.outbox.sqlite import delete_sqlite_database, sqlite_engine
from producers.outbox.table import OUTBOX_TABLE, create_outbox_table, ddl
from producers.outbox.writer import add_event, add_events

__all__ = [
    "OUTBOX_TABLE",
    "OutboxRelay",
    "RelaySettings",
    "RelayStats",
    "add_event",
    "add_events",
    "create_outbox_table",
    "ddl",
    "delete_sqlite_database",
    "sqlite_engine",
]
