"""A record at the broker's size limit is dead-lettered as a reference; nothing stalls.

The broker accepts a record of up to 1,048,588 bytes; its dead letter, the same record plus the
`dlq-*` headers, would not fit. It goes as a reference (source position, reason, size, no
value) and the partition moves on: an event published after it is purged in both regions.
"""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer

from contracts import topics
from contracts.example_orders import ORDER, OrderCreated
from invalidator import Invalidator, InvalidatorSettings
from invalidator.deadletter import FORM_REFERENCE
from invalidator.operators import end_offsets
from producers import CacheClient, EventPublisher
from tests.conftest import wait_until
from tests.integration.conftest import REGIONS
from tests.integration.kafka_tools import records_after

AT_THE_LIMIT = 1_048_450
"""A value this large, with a short key, makes a record batch just under the broker's default
message.max.bytes (1,048,588)."""


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
