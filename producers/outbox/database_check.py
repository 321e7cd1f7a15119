"""The relay's look at its database before it starts: a server that refuses the connection's
TLS or login stops `outbox` with one line naming the endpoint, the cause and the setting to fix
(never the password), rather than a relay retrying for ever."""

from __future__ import annotations

import ssl

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.errors import SettingsError


async def check_database(engine: AsyncEngine) -> None:
    """Connect once and run `SELECT 1`.

    Raises SettingsError when the server refuses the TLS handshake or the login (a setting to
    fix); lets OSError through when it cannot be reached (it may come back).
    """
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:
        refusal = _refusal(_root_cause(error), engine.url)
        if refusal is None:
            raise
        raise refusal from None


def _root_cause(error: BaseException) -> BaseException:
    """The driver's own error under SQLAlchemy's wrappers."""
    while True:
        inner = getattr(error, "orig", None) or error.__cause__
        if inner is None or inner is error:
            return error
        error = inner


def _refusal(cause: BaseException, url: URL) -> SettingsError | None:
    endpoint = f"{url.host}:{url.port or 5432}"
    if isinstance(cause, ssl.SSLCertVerificationError):
        return SettingsError(
            f"the database at {endpoint} refused: its TLS certificate does not verify "
            f"({cause.verify_message}); OUTBOX_DATABASE_TLS__CA_FILE must name the CA that "
            f"signed it, and the URL's host a name the certificate holds"
        )
    if isinstance(cause, ssl.SSLError):
        return SettingsError(f"the database at {endpoint} refused the TLS handshake: {cause}")
    if isinstance(cause, asyncpg.InvalidPasswordError):
        return SettingsError(
            f"the database at {endpoint} refused the login of user {url.username!r}: "
            f"{cause.args[0] if cause.args else 'wrong password'} (OUTBOX_DATABASE_PASSWORD)"
        )
    if isinstance(cause, asyncpg.InvalidAuthorizationSpecificationError):
        hint = (
            "; it takes TLS connections only: set OUTBOX_DATABASE_TLS__CA_FILE"
            if "no encryption" in str(cause)
            else ""
        )
        return SettingsError(f"the database at {endpoint} refused the connection: {cause}{hint}")
    if isinstance(cause, ConnectionError) and "SSL" in str(cause):
        return SettingsError(
            f"the database at {endpoint} does not serve TLS, and OUTBOX_DATABASE_TLS asks for "
            f"it: unset OUTBOX_DATABASE_TLS, or enable ssl on the server"
        )
    if isinstance(cause, asyncpg.PostgresError):
        return SettingsError(f"the database at {endpoint} refused the connection: {cause}")
    return None
