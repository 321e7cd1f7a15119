"""The outbox table: one row per event, written in the service's own transaction.

A row holds exactly what goes to Kafka (topic, key, headers, the envelope's bytes), so the relay
publishes it without decoding anything, and the event id is fixed when the row is written: a
row published twice is the same event twice, which consumers deduplicate or (the invalidator)
purge idempotently. The event type and schema version are also columns of their own: Debezium's
outbox router (`producers.outbox.debezium`) can only turn whole columns into headers.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    update,
)
from sqlalchemy import inspect as inspect_schema
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.schema import CreateIndex, CreateTable

from contracts.events import HEADER_EVENT_TYPE, HEADER_SCHEMA_VERSION

TABLE_NAME = "event_outbox"

metadata = MetaData()

OUTBOX_TABLE = Table(
    TABLE_NAME,
    metadata,
    # SQLite makes an INTEGER PRIMARY KEY the rowid (increasing); PostgreSQL a bigserial.
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("topic", String(249), nullable=False),
    Column("partition_key", LargeBinary, nullable=False),
    Column("headers", JSON, nullable=False),
    # The event-type and schema-version headers again, one column each: Debezium and the relay
    # make the records' headers from them (the relay reads `headers` where they are empty).
    Column("event_type", String(200), nullable=False),
    Column("schema_version", String(10), nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=True),
)
"""id orders the rows (the relay publishes in id order). Once Kafka acknowledged a row the relay
sets its published_at and deletes it after its retention; on PostgreSQL without a retention it
deletes the row at once instead."""

Index(
    f"ix_{TABLE_NAME}_pending",
    OUTBOX_TABLE.c.id,
    postgresql_where=OUTBOX_TABLE.c.published_at.is_(None),
    sqlite_where=OUTBOX_TABLE.c.published_at.is_(None),
)
Index(f"ix_{TABLE_NAME}_published_at", OUTBOX_TABLE.c.published_at)
Index(
    f"ix_{TABLE_NAME}_pending_key",
    OUTBOX_TABLE.c.partition_key,
    OUTBOX_TABLE.c.id,
    postgresql_where=OUTBOX_TABLE.c.published_at.is_(None),
).ddl_if(dialect="postgresql")  # also when the table itself is created
POSTGRESQL_ONLY = {f"ix_{TABLE_NAME}_pending_key"}
"""Indexes only PostgreSQL gets: several relays side by side look up a key's earliest pending
row (SQLite runs one relay)."""

DIALECTS = {
    "postgresql": postgresql.dialect(),  # type: ignore[no-untyped-call]
    "sqlite": sqlite.dialect(),
}


HEADER_COLUMNS = {"event_type": HEADER_EVENT_TYPE, "schema_version": HEADER_SCHEMA_VERSION}
"""Columns added after the first version of the table -> the header each repeats."""


async def create_outbox_table(engine: AsyncEngine) -> None:
    """Create the table and its indexes unless they exist (idempotent; on a table of an older
    version it adds the indexes and the columns it lacks, see `_add_header_columns`)."""

    def create(connection: Connection) -> None:
        OUTBOX_TABLE.create(connection, checkfirst=True)
        _add_header_columns(connection)
        for index in _indexes(connection.dialect.name):
            index.create(connection, checkfirst=True)

    async with engine.begin() as connection:
        await connection.run_sync(create)


def _add_header_columns(connection: Connection) -> None:
    """Add `event_type` and `schema_version` to a table made before they existed, filled from
    each row's headers. Added nullable: a writer of the older version, still running during a
    rolling upgrade, inserts rows without them (the relay then reads that row's `headers`;
    Debezium cannot, so switch to it once every writer is upgraded)."""
    # The schema the table was created in: a `schema_translate_map` applies to statements, not
    # to the inspector, which would look in the default schema.
    schema = connection.schema_for_object(OUTBOX_TABLE)
    present = {
        column["name"]
        for column in inspect_schema(connection).get_columns(TABLE_NAME, schema=schema)
    }
    missing = [name for name in HEADER_COLUMNS if name not in present]
    if not missing:
        return
    for name in missing:
        column = OUTBOX_TABLE.c[name]
        kind = column.type.compile(dialect=connection.dialect)
        connection.exec_driver_sql(f"ALTER TABLE {TABLE_NAME} ADD COLUMN {name} {kind}")
    connection.execute(
        update(OUTBOX_TABLE).values(
            {
                OUTBOX_TABLE.c[name]: OUTBOX_TABLE.c.headers[HEADER_COLUMNS[name]].as_string()
                for name in missing
            }
        )
    )


def _indexes(dialect: str) -> list[Index]:
    return [
        index
        for index in sorted(OUTBOX_TABLE.indexes, key=lambda index: str(index.name))
        if dialect == "postgresql" or index.name not in POSTGRESQL_ONLY
    ]


def ddl(dialect: str) -> str:
    """The CREATE statements of the table for `dialect` (`postgresql` or `sqlite`), for a
    migration tool of the service's choice."""
    compiled = DIALECTS[dialect]
    statements = [str(CreateTable(OUTBOX_TABLE).compile(dialect=compiled)).strip()]
    statements += [
        str(CreateIndex(index).compile(dialect=compiled)).strip() for index in _indexes(dialect)
    ]
    return ";\n\n".join(statements) + ";\n"
