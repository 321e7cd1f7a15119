"""PostgreSQL: the relay opens its next claim's transaction while it waits for a wake-up (a
wake-up then costs one round trip); a transaction the server ended meanwhile costs nothing but
a claim on a new connection: no failed batch, no back-off."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from contracts.connections import KafkaConnection
from producers.outbox import OutboxRelay, create_outbox_table
from tests.relay_fakes import Acknowledging, published_ids, running, write_row
from tests.waiting import wait_until

APPLICATION = "relay-open-claim-test"
IDLE_TIMEOUT_MS = 200


async def _idle_in_transaction(url: str) -> int:
    """How many of the relay's connections sit idle in a transaction."""
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        return int(
            await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = $1 AND state = 'idle in transaction'",
                APPLICATION,
            )
        )
    finally:
        await connection.close()


async def test_a_claim_whose_open_transaction_the_server_ended_is_made_again(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server ends a transaction idle for IDLE_TIMEOUT_MS; the relay's poll is a minute, so
    # the open claim outlives it, and only the commit's wake-up can start the claim.
    engine = create_async_engine(
        postgres_url,
        connect_args={
            "server_settings": {
                "application_name": APPLICATION,
                "idle_in_transaction_session_timeout": str(IDLE_TIMEOUT_MS),
            }
        },
    )
    await create_outbox_table(engine)
    relay = OutboxRelay(engine, KafkaConnection(), poll_interval_s=60)
    kafka = Acknowledging()
    monkeypatch.setattr(relay, "_producer", kafka)
    try:
        first = await write_row(engine, "o-open-1", 1)
        async with running(relay):

            async def first_marked() -> bool:
                return first in await published_ids(engine)

            await wait_until(first_marked, within=10, what="the first row relayed")

            async def claim_open() -> bool:
                return await _idle_in_transaction(postgres_url) == 1

            await wait_until(claim_open, within=10, what="the next claim's transaction open")

            async def claim_ended() -> bool:
                return await _idle_in_transaction(postgres_url) == 0

            await wait_until(claim_ended, within=10, what="the server ending the idle claim")
            second = await write_row(engine, "o-open-2", 2)

            async def second_marked() -> bool:
                return second in await published_ids(engine)

            await wait_until(second_marked, within=10, what="the second row relayed at once")
        assert kafka.sent == [first, second]
        assert relay.stats.publish_failures == 0, "the ended transaction failed a batch"
    finally:
        await engine.dispose()
