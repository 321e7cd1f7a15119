"""One region's Redis frozen (SIGSTOP) while events flow: that region pauses without committing,
the other keeps purging, and the frozen one catches up once the server runs again."""

from __future__ import annotations

import asyncio
import time

from contracts.example_orders import CATALOGUE
from contracts.layout import generation_key
from invalidator import InvalidatorSettings
from invalidator.operators import committed_offsets
from producers import EventPublisher, RedisClient
from tests.faults.accounting import account, dead_lettered_ids, record_outcome, scaled
from tests.faults.order_stream import OrderStream
from tests.faults.services import REDIS_EU, service_process
from tests.integration.invalidators import failing_fast, running_invalidators
from tests.integration.kafka_tools import caught_up
from tests.waiting import wait_until

FREEZE_S = scaled(3, 10)
EVENTS = scaled(400, 1500)


async def test_eu_redis_frozen_pauses_eu_alone_and_it_catches_up(
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    redis_clients: dict[str, RedisClient],
) -> None:
    eu_server = service_process(REDIS_EU)
    settings = failing_fast(settings, "eu")
    topics = CATALOGUE.topics()
    group_eu, group_us = settings.group_id("eu"), settings.group_id("us")
    # Spread over the freeze and as long again around it.
    stream = OrderStream(publisher, events=EVENTS, pace_s=2 * FREEZE_S / EVENTS)
    async with running_invalidators(settings, CATALOGUE) as invalidators:
        publishing = asyncio.create_task(stream.run())
        try:
            await wait_until(
                lambda: stream.published_at_least(EVENTS // 4), within=60, what="a quarter"
            )
            async with eu_server.frozen():
                frozen_at = time.monotonic()
                published_before_freeze = len(stream.published)
                retries_at_freeze = invalidators["eu"].stats.purge_retries

                async def eu_retrying() -> bool:
                    return invalidators["eu"].stats.purge_retries >= retries_at_freeze + 2

                await wait_until(eu_retrying, within=FREEZE_S, what="eu to retry while frozen")
                # Whatever eu purged before the freeze is committed by now (commits run every
                # 250 ms); from here on its offsets must not move until the server runs again.
                eu_committed_frozen = await committed_offsets(settings.kafka, group_eu)

                us = redis_clients["us"]

                async def us_purged_during_freeze() -> bool:
                    after = list(stream.published.values())[published_before_freeze:]
                    return any([await us.exists(generation_key(ns)) for ns in after[:50]])

                await wait_until(
                    us_purged_during_freeze, within=FREEZE_S, what="us to purge during the freeze"
                )
                # The fault lasts FREEZE_S: holding it is the scenario, not a wait on a condition.
                await asyncio.sleep(max(0.0, frozen_at + FREEZE_S - time.monotonic()))
                assert await committed_offsets(settings.kafka, group_eu) == eu_committed_frozen, (
                    "eu committed offsets while its Redis was frozen"
                )
            thawed_at = time.monotonic()
            published_before_thaw = dict(stream.published)

            async def eu_caught_up_with_the_freeze() -> bool:
                eu_only = {"eu": redis_clients["eu"]}
                return not (await account(published_before_thaw, eu_only)).lost["eu"]

            await wait_until(
                eu_caught_up_with_the_freeze,
                within=90,
                what="eu to purge what was published until the thaw",
                interval=0.1,
            )
            recover_s = time.monotonic() - thawed_at
            await asyncio.wait_for(publishing, timeout=120)

            async def both_caught_up() -> bool:
                return all(
                    [await caught_up(settings.kafka, g, topics) for g in (group_eu, group_us)]
                )

            await wait_until(
                both_caught_up, within=90, what="both regions to catch up", interval=0.1
            )
        finally:
            publishing.cancel()

    dead = await dead_lettered_ids(settings.kafka, settings.dead_letter_topic, group=group_eu)
    accounting = await account(stream.published, redis_clients, dead_lettered=dead)
    record_outcome(accounting.outcome("redis eu frozen (SIGSTOP)", recover_s))
    accounting.assert_nothing_lost()
    assert accounting.published == EVENTS
