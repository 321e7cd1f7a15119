"""A namespace Redis refuses (its index key holds a string: WRONGTYPE) holds nothing up.

The refused event goes to the dead-letter topic with reason `purge_refused` in each region;
its other namespaces, and every other event, are purged; the region neither pauses nor counts
the refusal as an outage.
"""

from __future__ import annotations

import uuid

from contracts import Catalogue, Namespace, PurgeRule, PurgeStrategy
from contracts.example_orders import OrderCreated
from contracts.layout import generation_key, index_key
from invalidator import InvalidatorSettings
from invalidator.operators import end_offsets
from producers import EventPublisher, RedisClient
from tests.integration.invalidators import REGIONS, running_invalidators
from tests.integration.kafka_tools import caught_up, records_after
from tests.waiting import wait_until

INDEXED = Namespace(
    name="refusal_indexed",
    template="refusal-indexed:{id}",
    owner="tests",
    description="an index-strategy namespace whose index key a test corrupts",
    purged_by=(PurgeRule(OrderCreated, {"id": "payload.order_id"}),),
    strategy=PurgeStrategy.INDEX,
)
PLAIN = Namespace(
    name="refusal_plain",
    template="refusal-plain:{id}",
    owner="tests",
    description="a generation-strategy namespace purged by the same event",
    purged_by=(PurgeRule(OrderCreated, {"id": "payload.order_id"}),),
)
CATALOGUE = Catalogue([INDEXED, PLAIN])


async def test_a_namespace_redis_refuses_is_dead_lettered_and_the_rest_is_purged(
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    redis_clients: dict[str, RedisClient],
) -> None:
    run = uuid.uuid4().hex[:10]
    refused, fine = f"r-{run}", f"f-{run}"
    for client in redis_clients.values():
        await client.set(index_key(INDEXED.bind(id=refused)), "not a set")
    dead_letter_start = await end_offsets(settings.kafka, [settings.dead_letter_topic])
    async with running_invalidators(settings, CATALOGUE) as invalidators:
        published = {}
        for order_id in (refused, fine):
            envelope = await publisher.publish(
                OrderCreated(order_id=order_id, company_id=f"c-{run}", total_cents=1),
                tenant="acme",
                aggregate_version=1,
            )
            published[order_id] = str(envelope.event_id)
        for region in REGIONS:
            group = settings.group_id(region)
            await wait_until(
                lambda group=group: caught_up(settings.kafka, group, CATALOGUE.topics()),  # type: ignore[misc]
                within=60,
                what=f"{group} to commit past the refused event",
            )
        for invalidator in invalidators.values():
            assert invalidator.stats.purge_refused == 1
            assert invalidator.stats.purge_retries == invalidator.stats.purge_errors == 0
    letters = await records_after(
        settings.kafka,
        dead_letter_start,
        lambda record: ("event-id", published[refused].encode()) in (record.headers or ()),
        count=len(REGIONS),
    )
    headers = [dict(letter.headers) for letter in letters]
    assert {h["dlq-group"].decode() for h in headers} == {settings.group_id(r) for r in REGIONS}
    assert all(h["dlq-reason"] == b"purge_refused" for h in headers)
    assert all(b"WRONGTYPE" in h["dlq-detail"] for h in headers)
    for client in redis_clients.values():
        assert await client.exists(generation_key(PLAIN.bind(id=refused)))
        assert await client.exists(generation_key(PLAIN.bind(id=fine)))
