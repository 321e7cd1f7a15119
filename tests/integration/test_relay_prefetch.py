"""While it runs, the relay claims the next batch while the last one's acknowledgements are
awaited. A key whose row then fails in the last batch has its later rows in that claimed batch
left unsent and unmarked: a later row is never marked while an earlier row of its key is not,
and the failed row goes out before them once Kafka takes it. (A producer whose sends fail for
chosen rows stands in for Kafka; the outbox is a database of this test.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from contracts.connections import KafkaConnection
from producers.outbox import OutboxRelay, create_outbox_table
from tests.relay_fakes import (
    ChosenFailures,
    HeldAcknowledgements,
    published_ids,
    running,
    write_row,
)
from tests.waiting import wait_until


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    created = create_async_engine(database_url)
    await create_outbox_table(created)
    yield created
    await created.dispose()


async def test_a_batch_claimed_ahead_holds_back_the_keys_the_last_batch_failed(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two rows per batch: [a1, b1] is full, so [a2, c1] is claimed while a1's send fails (its
    # mark waits for that claim here: a claim after the mark committed would take a1 again).
    a1, b1, a2, c1 = [
        await write_row(engine, order_id, version)
        for order_id, version in (("a", 1), ("b", 1), ("a", 2), ("c", 1))
    ]
    relay = OutboxRelay(engine, KafkaConnection(), batch_size=2, poll_interval_s=0.05)
    kafka = ChosenFailures({a1}, KafkaTimeoutError())
    monkeypatch.setattr(relay, "_producer", kafka)
    claims = 0
    claimed_ahead = asyncio.Event()
    claim_new, mark = relay._claim_new, relay._mark

    async def counted_claim(in_flight: Collection[int], connection: Any = None) -> Any:
        nonlocal claims
        claim = await claim_new(in_flight, connection)
        claims += 1
        if claims == 2:
            claimed_ahead.set()
        return claim

    async def mark_after_the_claim_ahead(connection: AsyncConnection, ids: Sequence[int]) -> None:
        await claimed_ahead.wait()
        await mark(connection, ids)

    monkeypatch.setattr(relay, "_claim_new", counted_claim)
    monkeypatch.setattr(relay, "_mark", mark_after_the_claim_ahead)

    async with running(relay):

        async def others_marked() -> bool:
            return {b1, c1} <= await published_ids(engine)

        await wait_until(others_marked, within=10, what="b1 and c1 marked, a1 failing")
        assert await published_ids(engine) == {b1, c1}, "a2 marked while a1 was not"
        assert kafka.sent[:3] == [a1, b1, c1], "a2, claimed ahead, went out after a1 failed"

        async def a1_retried() -> bool:
            # Each failure of a1 (a2 held back behind it) claims ahead a batch without them:
            # an empty one must not keep key a held back from the claims after it.
            return kafka.sent.count(a1) >= 3

        await wait_until(a1_retried, within=10, what="a1 tried again while Kafka refuses it")
        kafka.failing.clear()  # Kafka takes a1 now

        async def all_marked() -> bool:
            return await published_ids(engine) == {a1, b1, a2, c1}

        await wait_until(all_marked, within=10, what="every row marked once a1 goes out")
    key_a = [event_id for event_id in kafka.sent if event_id in (a1, a2)]
    assert key_a[-2:] == [a1, a2], f"key a's rows went out of order: {key_a}"
    assert relay.stats.publish_failures >= 1


async def test_a_commit_after_the_claim_ahead_is_relayed_without_waiting_for_the_poll(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # [r1, r2] is full, so the next batch is claimed ahead (empty: nothing else is pending);
    # r3 commits after that claim and before [r1, r2] is acknowledged. Its wake-up must not
    # be spent on the batch claimed ahead: the poll is a minute.
    for n in (1, 2):
        await write_row(engine, f"r{n}", 1)
    relay = OutboxRelay(engine, KafkaConnection(), batch_size=2, poll_interval_s=60)
    kafka = HeldAcknowledgements()
    monkeypatch.setattr(relay, "_producer", kafka)
    claimed_ahead = asyncio.Event()
    claim_new = relay._claim_new

    async def noted_claim(in_flight: Collection[int], connection: Any = None) -> Any:
        claim = await claim_new(in_flight, connection)
        if in_flight:
            claimed_ahead.set()
        return claim

    monkeypatch.setattr(relay, "_claim_new", noted_claim)
    async with running(relay):
        await asyncio.wait_for(claimed_ahead.wait(), timeout=10)
        r3 = await write_row(engine, "r3", 1)
        kafka.release.set()

        async def r3_marked() -> bool:
            return r3 in await published_ids(engine)

        await wait_until(r3_marked, within=5, what="r3 relayed well before the minute's poll")
