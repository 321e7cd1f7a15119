"""Where a group with no committed offset starts: INVALIDATOR_START_FROM, committed at once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from aiokafka import TopicPartition

from contracts import topics
from contracts.example_orders import CATALOGUE, COMPANY_ORDERS, OrderCreated
from contracts.layout import generation_key
from contracts.namespaces import BoundNamespace
from invalidator import Invalidator, InvalidatorSettings
from invalidator.operators import committed_offsets, log_bounds, offsets_at
from producers import EventPublisher, RedisClient
from tests.waiting import wait_until


@contextlib.asynccontextmanager
async def _started(settings: InvalidatorSettings) -> AsyncIterator[Invalidator]:
    invalidator = Invalidator(settings, region="eu", catalogue=CATALOGUE)
    task = asyncio.create_task(invalidator.run())
    try:
        await asyncio.wait_for(invalidator.assigned.wait(), timeout=60)
        yield invalidator
    finally:
        invalidator.stop()
        await asyncio.wait_for(task, timeout=60)


async def _publish(publisher: EventPublisher) -> BoundNamespace:
    """Publish an order of a new company; returns the company's order-list namespace."""
    suffix = uuid.uuid4().hex[:10]
    await publisher.publish(
        OrderCreated(order_id=f"o-{suffix}", company_id=f"c-{suffix}", total_cents=1),
        tenant="acme",
        aggregate_version=1,
    )
    return COMPANY_ORDERS.bind(company_id=f"c-{suffix}")


async def _purged(redis: RedisClient, namespace: BoundNamespace) -> bool:
    return bool(await redis.exists(generation_key(namespace)))


async def _orders_partitions(
    settings: InvalidatorSettings,
) -> dict[TopicPartition, tuple[int, int]]:
    return await log_bounds(settings.kafka, CATALOGUE.topics())


async def test_latest_starts_at_the_log_end_and_commits_it(
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    redis_clients: dict[str, RedisClient],
) -> None:
    skipped = await _publish(publisher)  # before the group exists
    latest = settings.model_copy(update={"start_from": "latest"})
    group = latest.group_id("eu")
    ends_before = {tp: end for tp, (_, end) in (await _orders_partitions(latest)).items()}
    async with _started(latest):
        committed = await committed_offsets(latest.kafka, group)
        purged = await _publish(publisher)
        await wait_until(
            lambda: _purged(redis_clients["eu"], purged), within=30, what="the later event purged"
        )
    assert set(committed) == set(ends_before)
    assert all(committed[tp] >= end for tp, end in ends_before.items()), committed
    assert not await _purged(redis_clients["eu"], skipped)


async def test_a_time_starts_at_the_first_record_at_or_after_it(
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    redis_clients: dict[str, RedisClient],
) -> None:
    skipped = await _publish(publisher)
    # Record timestamps are in milliseconds: the start is a few of them after the skipped
    # event's, and the purged one is published once that instant has passed.
    since = datetime.now(UTC) + timedelta(milliseconds=5)

    async def since_passed() -> bool:
        return datetime.now(UTC) > since

    await wait_until(since_passed, within=5, what="the start instant to pass", interval=0.001)
    purged = await _publish(publisher)
    at_time = settings.model_copy(update={"start_from": since.isoformat()})
    bounds = await _orders_partitions(at_time)
    expected = await offsets_at(at_time.kafka, sorted(bounds), int(since.timestamp() * 1000))
    assert expected != {tp: end for tp, (_, end) in bounds.items()}, "the second event is later"
    async with _started(at_time):
        committed = await committed_offsets(at_time.kafka, at_time.group_id("eu"))
        await wait_until(
            lambda: _purged(redis_clients["eu"], purged), within=30, what="the later event purged"
        )
    assert not await _purged(redis_clients["eu"], skipped)
    # The invalidator may have purged (and committed) beyond the start meanwhile, never before.
    assert set(committed) == set(expected)
    assert all(committed[tp] >= expected[tp] for tp in expected), (committed, expected)
    moved = [tp for tp in expected if expected[tp] < bounds[tp][1]]
    assert moved and all(committed[tp] <= bounds[tp][1] for tp in moved)


async def test_earliest_is_the_default_and_starts_at_the_log_start(
    settings: InvalidatorSettings,
) -> None:
    assert settings.start_from == "earliest"
    bounds = await _orders_partitions(settings)
    group = settings.group_id("eu")
    async with _started(settings):
        committed = await committed_offsets(settings.kafka, group)
    assert set(committed) == set(bounds)
    assert all(committed[tp] >= start for tp, (start, _) in bounds.items())
    assert topics.ORDERS in {tp.topic for tp in committed}
