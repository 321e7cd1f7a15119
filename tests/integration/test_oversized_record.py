"""A record too large to dead-letter whole is dead-lettered as a reference; nothing stalls.

Two limits can refuse a dead letter, and each is tested:
- the dead-letter producer's own (`dead_letter_max_bytes`): the broker accepts a record of up to
  1,048,588 bytes, and its dead letter, the same record plus the `dlq-*` headers, is over it;
- the broker's, for a dead-letter topic whose `max.message.bytes` is below the producer's limit:
  the producer sends the letter whole and the broker refuses it.
Either way the letter goes as a reference (source position, reason, size, no value) and the
partition moves on: an event published after it is purged in both regions.
"""

from __future__ import annotations

import os
import uuid

from aiokafka import AIOKafkaProducer, TopicPartition

from contracts import topics
from contracts.example_orders import CATALOGUE, ORDER, OrderCreated
from invalidator import Invalidator, InvalidatorSettings
from invalidator.deadletter import FORM_REFERENCE
from invalidator.operators import end_offsets
from producers import CacheClient, EventPublisher
from tests.integration.invalidators import REGIONS, running_invalidators
from tests.integration.kafka_tools import delete_topic, ensure_topic, records_after
from tests.waiting import wait_until

AT_THE_LIMIT = 1_048_450
"""A value this large, with a short key, makes a record batch just under the broker's default
message.max.bytes (1,048,588)."""
DEAD_LETTER_TOPIC_LIMIT = 100_000
"""`max.message.bytes` of the dead-letter topic of the broker's refusal: below the producer's."""
BETWEEN_THE_LIMITS = 300_000
"""A record this large goes whole to the event topic, passes the dead-letter producer's limit,
and is refused by the dead-letter topic's."""


async def test_a_record_at_the_size_limit_is_dead_lettered_as_a_reference_and_nothing_stalls(
    invalidators: dict[str, Invalidator],
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    caches: dict[str, CacheClient],
) -> None:
    dead_letter_start = await end_offsets(settings.kafka, [topics.DEAD_LETTER])
    key = f"oversized-{uuid.uuid4().hex}".encode()
    raw = AIOKafkaProducer(acks="all", max_request_size=2_000_000, **settings.kafka.client_kwargs())
    await raw.start()
    try:
        sent = await raw.send_and_wait(topics.ORDERS, value=b"x" * AT_THE_LIMIT, key=key)
    finally:
        await raw.stop()

    order_id = f"o-{uuid.uuid4().hex[:12]}"
    page = ORDER.bind(order_id=order_id)
    before = {region: (await caches[region].read(page, "detail")).generation for region in REGIONS}
    await publisher.publish(
        OrderCreated(order_id=order_id, company_id="c-oversized", total_cents=1),
        tenant="acme",
        aggregate_version=1,
    )

    async def purged_everywhere() -> bool:
        now = {region: (await caches[region].read(page, "detail")).generation for region in REGIONS}
        return all(now[region] != before[region] for region in REGIONS)

    await wait_until(purged_everywhere, within=60, what="the event after the oversized record")
    letters = await records_after(
        settings.kafka, dead_letter_start, lambda record: record.key == key, count=len(REGIONS)
    )
    headers = [{name: text.decode() for name, text in letter.headers} for letter in letters]
    assert {h["dlq-group"] for h in headers} == {settings.group_id(r) for r in REGIONS}
    for letter, found in zip(letters, headers, strict=True):
        assert letter.value is None
        assert found["dlq-form"] == FORM_REFERENCE
        assert found["dlq-size"] == str(AT_THE_LIMIT)
        assert found["dlq-reason"] == "malformed"
        assert (found["dlq-topic"], found["dlq-partition"], found["dlq-offset"]) == (
            topics.ORDERS,
            str(sent.partition),
            str(sent.offset),
        )
    for invalidator in invalidators.values():
        assert invalidator.stats.purge_retries == 0


async def test_a_dead_letter_the_broker_refuses_for_size_goes_as_a_reference_and_nothing_stalls(
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    caches: dict[str, CacheClient],
) -> None:
    topic = f"test-dead-letter-{uuid.uuid4().hex[:10]}"
    await ensure_topic(
        settings.kafka,
        topic,
        partitions=1,
        configs={"max.message.bytes": str(DEAD_LETTER_TOPIC_LIMIT)},
    )
    narrow = settings.model_copy(update={"dead_letter_topic": topic})
    assert DEAD_LETTER_TOPIC_LIMIT < BETWEEN_THE_LIMITS < narrow.dead_letter_max_bytes
    key = f"between-limits-{uuid.uuid4().hex}".encode()
    order_id = f"o-{uuid.uuid4().hex[:12]}"
    page = ORDER.bind(order_id=order_id)
    try:
        async with running_invalidators(narrow, CATALOGUE) as invalidators:
            raw = AIOKafkaProducer(acks="all", **narrow.kafka.client_kwargs())
            await raw.start()
            try:  # random bytes: no compression can bring the letter under the topic's limit
                value = os.urandom(BETWEEN_THE_LIMITS)
                sent = await raw.send_and_wait(topics.ORDERS, value=value, key=key)
            finally:
                await raw.stop()
            before = {
                region: (await caches[region].read(page, "detail")).generation for region in REGIONS
            }
            await publisher.publish(
                OrderCreated(order_id=order_id, company_id="c-between-limits", total_cents=1),
                tenant="acme",
                aggregate_version=1,
            )

            async def purged_everywhere() -> bool:
                for region in REGIONS:
                    now = (await caches[region].read(page, "detail")).generation
                    if now == before[region]:
                        return False
                return True

            await wait_until(purged_everywhere, within=60, what="the event after the record")
            letters = await records_after(
                narrow.kafka,
                {TopicPartition(topic, 0): 0},
                lambda record: record.key == key,
                count=len(REGIONS),
            )
            retries = {region: inv.stats.purge_retries for region, inv in invalidators.items()}
    finally:
        await delete_topic(settings.kafka, topic)
    headers = [{name: text.decode() for name, text in letter.headers} for letter in letters]
    assert {h["dlq-group"] for h in headers} == {narrow.group_id(r) for r in REGIONS}
    for letter, found in zip(letters, headers, strict=True):
        assert letter.value is None
        assert found["dlq-form"] == FORM_REFERENCE
        assert found["dlq-size"] == str(BETWEEN_THE_LIMITS)
        assert found["dlq-reason"] == "malformed"
        assert (found["dlq-topic"], found["dlq-partition"], found["dlq-offset"]) == (
            topics.ORDERS,
            str(sent.partition),
            str(sent.offset),
        )
    assert retries == dict.fromkeys(REGIONS, 0)
