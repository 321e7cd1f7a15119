"""The dead-letter topic: records that cannot be purged are kept there with the reason."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError

from contracts import topics
from contracts.connections import KafkaConnection
from contracts.decoding import RejectReason
from contracts.kafka_clients import idempotent_producer
from contracts.renewing_producer import RenewingProducer
from invalidator.outcome import Rejection

HEADER_REASON = "dlq-reason"
HEADER_DETAIL = "dlq-detail"
HEADER_TOPIC = "dlq-topic"
HEADER_PARTITION = "dlq-partition"
HEADER_OFFSET = "dlq-offset"
HEADER_GROUP = "dlq-group"
HEADER_FORM = "dlq-form"
HEADER_SIZE = "dlq-size"
HEADER_SOURCE_CLUSTER = "dlq-source-cluster"
HEADER_SOURCE_TOPIC = "dlq-source-topic"
FORM_WHOLE = "whole"
FORM_REFERENCE = "reference"
DEAD_LETTER_REASONS = tuple(reason.value for reason in RejectReason)
"""Every `dlq-reason` a dead letter can carry, as documented."""
HEADERS_DOC = {
    HEADER_REASON: "why, one of: "
    + "; ".join(f"`{reason.value}`: {reason.description}" for reason in RejectReason),
    HEADER_DETAIL: "what was wrong, in words (at most 2000 characters)",
    HEADER_TOPIC: "the topic the record was read from",
    HEADER_PARTITION: "its partition, as decimal text",
    HEADER_OFFSET: "its offset, as decimal text",
    HEADER_GROUP: "the consumer group that rejected it (invalidator.<region>)",
    HEADER_FORM: f"`{FORM_WHOLE}`: the original value, key and headers follow; `{FORM_REFERENCE}`:"
    " the record was too large to forward whole, so the value is left out (read the original"
    " at its source position while the topic retains it)",
    HEADER_SIZE: "the original value's size in bytes, as decimal text",
    HEADER_SOURCE_CLUSTER: "only for a record mirrored from another region's cluster: that"
    " region (MirrorMaker's alias for its cluster)",
    HEADER_SOURCE_TOPIC: "only for a mirrored record: the topic it was published to there",
}
"""The headers a dead letter carries besides the original record's, and what each holds."""
OPTIONAL_HEADERS = frozenset({HEADER_SOURCE_CLUSTER, HEADER_SOURCE_TOPIC})
"""Those of `HEADERS_DOC` that only some dead letters carry (mirrored records')."""


REFERENCE_KEY_MAX_BYTES = 1024
"""A reference letter keeps the original key up to this size (none beyond)."""
REFERENCE_HEADERS_MAX_BYTES = 16 * 1024
"""A reference letter keeps the original headers up to this total size (none beyond)."""

log = logging.getLogger(__name__)


class DeadLetters:
    """Publishes rejected records (value, key and headers unchanged) plus why they were rejected."""

    def __init__(
        self,
        kafka: KafkaConnection,
        *,
        topic: str,
        group_id: str,
        max_bytes: int = 1_000_000,
        mirrored_from: Collection[str] = (),
    ) -> None:
        """kafka: the cluster; topic: the dead-letter topic; group_id: the rejecting group.
        max_bytes: the largest dead letter sent whole (under the topic's `max.message.bytes`);
            a larger one is sent as a reference.
        mirrored_from: the regions whose topics are mirrored into this cluster: a dead letter
            of their records names the source cluster and topic.
        """
        self.topic = topic
        self._group_id = group_id
        self._mirrored_from = tuple(mirrored_from)
        self._producer = RenewingProducer(
            lambda: idempotent_producer(
                kafka,
                client_id=f"{group_id}.dead-letters",
                # Refused here, before a sequence number is spent, rather than by the broker.
                max_request_size=max_bytes,
            ),
            name=f"{group_id} dead letters",
        )

    async def start(self) -> None:
        """Connect."""
        await self._producer.start()

    async def stop(self) -> None:
        """Flush and disconnect."""
        await self._producer.stop()

    async def send(self, rejected: Sequence[Rejection]) -> None:
        """Publish each rejected record and wait until every one is acknowledged.

        Each goes whole (value, key and headers unchanged, plus the `dlq-*` headers). One that
        cannot (the client's or the broker's size limit: the added headers push a record at the
        limit over it) goes as a reference instead: its source position, reason and size,
        without the value. So no record, however large, can hold its partition up.
        Any other failure raises (the caller retries the batch).
        """
        pending = []
        for rejection in rejected:
            try:
                pending.append((rejection, await self._send(rejection, FORM_WHOLE)))
            except MessageSizeTooLargeError:  # refused before sending: over max_request_size
                pending.append((rejection, await self._send(rejection, FORM_REFERENCE)))
        results = await asyncio.gather(*(sent for _, sent in pending), return_exceptions=True)
        references = []
        for (rejection, _), result in zip(pending, results, strict=True):
            if isinstance(result, MessageSizeTooLargeError):  # refused by the broker
                references.append(await self._send(rejection, FORM_REFERENCE))
            elif isinstance(result, BaseException):
                raise result
        await asyncio.gather(*references)

    async def _send(self, rejection: Rejection, form: str) -> asyncio.Future[Any]:
        record, reason, detail = rejection
        size = len(record.value or b"")
        value, key, headers = record.value, record.key, list(record.headers or ())
        if form == FORM_REFERENCE:
            log.warning(
                "dead letter of %s[%d]@%d (%d bytes) is too large to forward whole; "
                "sending a reference to it",
                record.topic,
                record.partition,
                record.offset,
                size,
                extra={"offsets": {f"{record.topic}[{record.partition}]": record.offset}},
            )
            detail = f"{detail[:1900]} (the record, {size} bytes, is too large to forward whole)"
            value = None
            if key is not None and len(key) > REFERENCE_KEY_MAX_BYTES:
                key = None
            if sum(len(name) + len(text) for name, text in headers) > REFERENCE_HEADERS_MAX_BYTES:
                headers = []
        headers += [
            (HEADER_REASON, reason.encode()),
            (HEADER_DETAIL, detail[:2000].encode()),
            (HEADER_TOPIC, record.topic.encode()),
            (HEADER_PARTITION, str(record.partition).encode()),
            (HEADER_OFFSET, str(record.offset).encode()),
            (HEADER_GROUP, self._group_id.encode()),
            (HEADER_FORM, form.encode()),
            (HEADER_SIZE, str(size).encode()),
        ]
        origin = topics.mirror_origin(record.topic, self._mirrored_from)
        if origin is not None:
            headers += [
                (HEADER_SOURCE_CLUSTER, origin[0].encode()),
                (HEADER_SOURCE_TOPIC, origin[1].encode()),
            ]
        sent: asyncio.Future[Any] = await self._producer.send(
            self.topic, value, key=key, headers=headers
        )
        return sent
