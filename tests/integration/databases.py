"""Throwaway databases for the tests that run on SQLite and on PostgreSQL (the outbox's)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from sqlalchemy.engine import URL, make_url

DATABASES = ("sqlite", "postgresql")
"""The databases the outbox supports: the test ids of the `database_url` fixture."""


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy async URL (aiosqlite) of the SQLite database file at `path`."""
    return f"sqlite+aiosqlite:///{path}"


@contextlib.asynccontextmanager
async def scratch_postgres_database(server_url: str) -> AsyncIterator[str]:
    """A new, empty database `outbox_test_<random>` on the server `server_url` points at,
    dropped on exit (even with sessions still open on it).

    server_url: a SQLAlchemy async URL (`postgresql+asyncpg://user@host:port/db`) of a
        database on that server whose user may create databases.
    Yields the new database's URL in the same form.
    """
    server = make_url(server_url)
    name = f"outbox_test_{uuid.uuid4().hex[:12]}"
    await _execute(server, f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        await _execute(server, f'DROP DATABASE "{name}" WITH (FORCE)')


async def _execute(server: URL, statement: str) -> None:
    """Run one statement on its own asyncpg connection (CREATE/DROP DATABASE cannot run in a
    transaction, and a connection per call survives a server restart between them)."""
    dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()
