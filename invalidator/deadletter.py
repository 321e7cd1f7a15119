"""The dead-letter topic: records that cannot be purged are kept there with the reason."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from contracts.connections import KafkaConnection
from contracts.decoding import RejectReason

HEADER_REASON = "dlq-reason"
HEADER_DETAIL = "dlq-detail"
HEADER_TOPIC = "dlq-topic"
HEADER_PARTITION = "dlq-partition"
HEADER_OFFSET = "dlq-offset"
HEADER_GROUP = "dlq-group"
HEADERS_DOC = {
    HEADER_REASON: "why: " + ", ".join(r.value for r in RejectReason) + " or unplannable",
    HEADER_DETAIL: "what was wrong, in words (at most 2000 characters)",
    HEADER_TOPIC: "the topic the record was read from",
    HEADER_PARTITION: "its partition, as decimal text",
    HEADER_OFFSET: "its offset, as decimal text",
    HEADER_GROUP: "the consumer group that rejected it (invalidator.<region>)",
}
"""The headers a dead letter carries besides the original record's, and what each holds."""


class DeadLetters:
    """Publishes rejected records (value, key and headers unchanged) plus why they were rejected."""

    def __init__(self, kafka: KafkaConnection, *, topic: str, group_id: str) -> None:
        """kafka: the cluster; topic: the dead-letter topic; group_id: the rejecting group."""
        self.topic = topic
        self._group_id = group_id
        self._producer = AIOKafkaProducer(
            acks="all",
            enable_idempotence=True,
            client_id=f"{group_id}.dead-letters",
            **kafka.client_kwargs(),
        )

    async def start(self) -> None:
        """Connect."""
        await self._producer.start()

    async def stop(self) -> None:
        """Flush and disconnect."""
        await self._producer.stop()

    async def send(self, rejected: Sequence[tuple[Any, str, str]]) -> None:
        """Publish each (record, reason, detail) and wait until every one is acknowledged.

        record: the aiokafka ConsumerRecord that was rejected.
        reason: a short machine-readable reason (e.g. `malformed`).
        detail: what was wrong, in words.
        """
        sends = []
        for record, reason, detail in rejected:
            headers = [
                *(record.headers or ()),
                (HEADER_REASON, reason.encode()),
                (HEADER_DETAIL, detail[:2000].encode()),
                (HEADER_TOPIC, record.topic.encode()),
                (HEADER_PARTITION, str(record.partition).encode()),
                (HEADER_OFFSET, str(record.offset).encode()),
                (HEADER_GROUP, self._group_id.encode()),
            ]
            sends.append(
                await self._producer.send(
                    self.topic, value=record.value, key=record.key, headers=headers
                )
            )
        await asyncio.gather(*sends)
