"""A region whose Redis is cut off lags alone, retries, and catches up without losing a purge."""

from __future__ import annotations

import asyncio
import time
import uuid

from contracts.example_orders import CATALOGUE, ORDER, OrderCreated
from contracts.layout import generation_key
from invalidator import Invalidator, InvalidatorSettings
from invalidator.operators import committed_offsets, start_at_log_end
from producers import EventPublisher, RedisClient
from tests.faults.accounting import Outcome, record_outcome
from tests.faults.proxy import region_through_proxy
from tests.integration.kafka_tools import caught_up
from tests.waiting import wait_until


async def test_eu_redis_cut_off_lags_alone_and_catches_up(
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    redis_clients: dict[str, RedisClient],
) -> None:
    proxy, settings = await region_through_proxy(settings, "eu")
    topics = CATALOGUE.topics()
    invalidators = {}
    tasks = []
    starts = {}
    for region in ("eu", "us"):
        starts[region] = await start_at_log_end(settings.kafka, settings.group_id(region), topics)
        invalidators[region] = Invalidator(settings, region=region, catalogue=CATALOGUE)
        tasks.append(asyncio.create_task(invalidators[region].run()))
    try:
        for invalidator in invalidators.values():
            await asyncio.wait_for(invalidator.assigned.wait(), timeout=60)

        await proxy.cut()
        run = uuid.uuid4().hex[:8]
        orders = [ORDER.bind(order_id=f"o-{run}-{i}") for i in range(50)]
        for i in range(50):
            await publisher.publish(
                OrderCreated(order_id=f"o-{run}-{i}", company_id=f"c-{run}", total_cents=i),
                tenant="acme",
                aggregate_version=1,
            )

        group_us, group_eu = settings.group_id("us"), settings.group_id("eu")
        await wait_until(
            lambda: caught_up(settings.kafka, group_us, topics),
            within=60,
            what="us to purge everything while eu is cut off",
            interval=0.1,
        )

        async def eu_retrying() -> bool:
            return invalidators["eu"].stats.purge_retries >= 3

        await wait_until(eu_retrying, within=30, what="eu to retry its purge")
        eu_committed = await committed_offsets(settings.kafka, group_eu)
        assert all(eu_committed[tp] == offset for tp, offset in starts["eu"].items()), (
            "eu committed offsets although its Redis is unreachable"
        )
        eu = redis_clients["eu"]
        assert sum([await eu.exists(generation_key(ns)) for ns in orders]) == 0

        await proxy.restore()
        restored = time.monotonic()
        await wait_until(
            lambda: caught_up(settings.kafka, group_eu, topics),
            within=60,
            what="eu to catch up once its Redis is back",
            interval=0.1,
        )
        recover_s = time.monotonic() - restored
        purged = {
            region: sum([await client.exists(generation_key(ns)) for ns in orders])
            for region, client in redis_clients.items()
        }
        lost = len(orders) - min(purged.values())
        record_outcome(Outcome("redis eu cut off (TCP proxy)", len(orders), lost, 0, recover_s))
        assert purged == {"eu": len(orders), "us": len(orders)}
    finally:
        for invalidator in invalidators.values():
            invalidator.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
        await proxy.cut()
