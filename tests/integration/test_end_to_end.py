"""The core path on the real broker and both regions: publish, invalidate, read misses."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import AIOKafkaProducer

from contracts import topics
from contracts.example_orders import (
    CATALOGUE,
    COMPANY_ORDER_STATS,
    COMPANY_ORDERS,
    ORDER,
    OrderCreated,
    OrderStatusChanged,
)
from contracts.layout import generation_key
from invalidator import Invalidator, InvalidatorSettings
from invalidator.operators import end_offsets
from producers import CacheClient, EventPublisher, RedisClient
from tests.integration.invalidators import REGIONS
from tests.integration.kafka_tools import caught_up, records_after
from tests.waiting import wait_until


def _ids() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:12]
    return f"o-{suffix}", f"c-{suffix}"


async def test_an_event_purges_its_namespaces_in_every_region(
    invalidators: dict[str, Invalidator],
    publisher: EventPublisher,
    caches: dict[str, CacheClient],
    redis_clients: dict[str, RedisClient],
) -> None:
    order_id, company_id = _ids()
    namespaces = [
        COMPANY_ORDERS.bind(company_id=company_id),
        COMPANY_ORDER_STATS.bind(company_id=company_id),
        ORDER.bind(order_id=order_id),
    ]
    before = {
        (region, ns.key): (await caches[region].read(ns, "page:1")).generation
        for region in REGIONS
        for ns in namespaces
    }

    await publisher.publish(
        OrderCreated(order_id=order_id, company_id=company_id, total_cents=1200),
        tenant="acme",
        aggregate_version=1,
    )

    async def all_purged() -> bool:
        for (region, key), generation in before.items():
            namespace = next(ns for ns in namespaces if ns.key == key)
            if await redis_clients[region].get(generation_key(namespace)) == generation:
                return False
        return True

    await wait_until(all_purged, within=30, what="every namespace purged in eu and us")
    untouched = COMPANY_ORDERS.bind(company_id=f"other-{company_id}")
    for region in REGIONS:
        assert await redis_clients[region].exists(generation_key(untouched)) == 0


async def test_a_filled_entry_misses_after_the_purge_and_a_fresh_fill_hits(
    invalidators: dict[str, Invalidator],
    publisher: EventPublisher,
    caches: dict[str, CacheClient],
) -> None:
    order_id, company_id = _ids()
    page = COMPANY_ORDERS.bind(company_id=company_id)
    for cache in caches.values():
        await cache.get_or_fill(page, "page:1", _const(b'{"status":"placed"}'))
        assert await cache.get(page, "page:1") == b'{"status":"placed"}'

    await publisher.publish(
        OrderStatusChanged(
            order_id=order_id, company_id=company_id, old_status="placed", new_status="paid"
        ),
        tenant="acme",
        aggregate_version=2,
    )

    async def missed_everywhere() -> bool:
        return all([await cache.get(page, "page:1") is None for cache in caches.values()])

    await wait_until(missed_everywhere, within=30, what="the cached page to miss in eu and us")
    for cache in caches.values():
        assert await cache.get_or_fill(page, "page:1", _const(b'{"status":"paid"}')) == (
            b'{"status":"paid"}'
        )
        assert await cache.get(page, "page:1") == b'{"status":"paid"}'


async def test_malformed_records_go_to_the_dead_letter_topic_and_do_not_stall(
    invalidators: dict[str, Invalidator],
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    caches: dict[str, CacheClient],
) -> None:
    dead_letter_start = await end_offsets(settings.kafka, [topics.DEAD_LETTER])
    raw = AIOKafkaProducer(acks="all", **settings.kafka.client_kwargs())
    await raw.start()
    marker = uuid.uuid4().hex
    try:
        await raw.send_and_wait(topics.ORDERS, value=f"not json {marker}".encode(), key=b"order:x")
    finally:
        await raw.stop()
    order_id, company_id = _ids()
    page = ORDER.bind(order_id=order_id)
    before = (await caches["eu"].read(page, "detail")).generation
    await publisher.publish(
        OrderCreated(order_id=order_id, company_id=company_id, total_cents=1),
        tenant="acme",
        aggregate_version=1,
    )

    async def purged_after_the_poison() -> bool:
        return (await caches["eu"].read(page, "detail")).generation != before

    await wait_until(purged_after_the_poison, within=30, what="the event after the poison")

    letters = await records_after(
        settings.kafka,
        dead_letter_start,
        lambda record: record.value is not None and marker.encode() in record.value,
        count=len(REGIONS),
    )
    found = [{name: text.decode() for name, text in letter.headers} for letter in letters]
    assert {h["dlq-group"] for h in found} == {settings.group_id(r) for r in REGIONS}
    assert all(h["dlq-reason"] == "malformed" for h in found)
    assert all(h["dlq-topic"] == topics.ORDERS for h in found)


async def test_ten_thousand_events_are_all_purged_in_both_regions(
    invalidators: dict[str, Invalidator],
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    redis_clients: dict[str, RedisClient],
) -> None:
    count = 10_000
    run = uuid.uuid4().hex[:8]
    orders = [ORDER.bind(order_id=f"o-{run}-{i}") for i in range(count)]
    started = time.perf_counter()
    for chunk in range(0, count, 500):
        await asyncio.gather(
            *(
                publisher.publish(
                    OrderCreated(
                        order_id=f"o-{run}-{i}", company_id=f"c-{run}-{i % 50}", total_cents=i
                    ),
                    tenant="acme",
                    aggregate_version=1,
                )
                for i in range(chunk, min(chunk + 500, count))
            )
        )
    published = time.perf_counter()

    async def both_caught_up() -> bool:
        return all(
            [
                await caught_up(settings.kafka, settings.group_id(r), CATALOGUE.topics())
                for r in REGIONS
            ]
        )

    await wait_until(
        both_caught_up, within=240, what="both regions to commit every event", interval=0.2
    )
    done = time.perf_counter()
    for region, client in redis_clients.items():
        missing = 0
        for chunk in range(0, count, 1000):
            pipeline = client.pipeline(transaction=False)
            for namespace in orders[chunk : chunk + 1000]:
                pipeline.exists(generation_key(namespace))
            missing += sum(1 for found in await pipeline.execute() if not found)
        assert missing == 0, f"{missing} of {count} orders were not purged in {region}"
    print(
        f"\n10k events: published in {published - started:.2f}s, all purged in both regions "
        f"after {done - started:.2f}s ({count / (done - started):.0f} events/s end to end); "
        f"eu {invalidators['eu'].stats.summary()}; us {invalidators['us'].stats.summary()}"
    )


def _const(value: bytes):  # type: ignore[no-untyped-def]
    async def load() -> bytes:
        return value

    return load
