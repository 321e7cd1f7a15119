"""An idempotent Kafka producer that starts a new producer session after a send it gave up on.

aiokafka's idempotent producer numbers each partition's batches. A batch that fails without
reaching the broker (it expired while its partition had no leader: the cluster was down for
longer than `request_timeout_ms`) keeps its sequence number spent, and from then on the broker
refuses every batch of that partition with OutOfOrderSequenceNumber, for as long as the
process lives. A batch the broker refused (a record over the topic's `max.message.bytes`)
leaves the same gap. Kafka's Java client bumps the producer epoch in both cases; aiokafka does
not.

`RenewingProducer` restores the Java client's behaviour the only way aiokafka allows: after a
send failed, the next send first stops the producer and starts a new one, which gets a new
producer id and numbers from zero again. The failed send itself is reported to its caller,
who sends it again (with the same event id, so a duplicate is harmless).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes]]


class RenewingProducer:
    """Sends through an aiokafka producer made by `new_producer`, and replaces that producer
    before the next send once one of its sends has failed.

    Use `start()`/`stop()`, or `async with`. Sends of one key stay in order within a producer
    session; the replacement waits until the old session has stopped, so nothing of it is
    still in flight when the new one sends.
    """

    def __init__(self, new_producer: Callable[[], AIOKafkaProducer], *, name: str) -> None:
        """new_producer: builds an unstarted idempotent producer (`acks="all"`), the same way
            each time.
        name: what the log lines call this producer (e.g. `outbox relay`).
        """
        self._new_producer = new_producer
        self._name = name
        self._producer: AIOKafkaProducer | None = None
        self._failed: AIOKafkaProducer | None = None
        """The session a send failed in, until it is replaced."""
        self._renewing = asyncio.Lock()
        self.renewals = 0
        """How many times a new session replaced one whose send failed."""

    async def start(self) -> None:
        """Start the first session (connects; raises when the brokers cannot be reached)."""
        self._producer = await self._started()

    async def stop(self) -> None:
        """Flush what is pending and stop the current session."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def __aenter__(self) -> RenewingProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Headers | None = None,
    ) -> asyncio.Future[Any]:
        """Enqueue one record; the future resolves to its RecordMetadata once acknowledged, or
        fails (the next send then starts a new session first).

        Raises what aiokafka's `send` raises before enqueuing (e.g. MessageSizeTooLargeError
        over `max_request_size`; no sequence number is spent), and what starting a new session
        raises while the brokers cannot be reached.
        """
        producer = await self._current()
        sent: asyncio.Future[Any] = await producer.send(
            topic, value, key=key, headers=list(headers) if headers is not None else None
        )
        sent.add_done_callback(lambda done: self._note(done, producer))
        return sent

    async def _current(self) -> AIOKafkaProducer:
        if self._producer is not None and self._failed is not self._producer:
            return self._producer
        async with self._renewing:
            if self._producer is None or self._failed is self._producer:
                await self._renew()
            assert self._producer is not None
            return self._producer

    async def _renew(self) -> None:
        old, self._producer = self._producer, None
        if old is not None:
            log.warning(
                "%s: a send failed; starting a new producer session (aiokafka keeps a failed "
                "batch's sequence number spent, and the broker would refuse every later one)",
                self._name,
            )
            await old.stop()
        self._producer = await self._started()
        self._failed = None
        if old is not None:
            self.renewals += 1

    async def _started(self) -> AIOKafkaProducer:
        """A new session, started; stopped again (no unclosed client) when it cannot start."""
        producer = self._new_producer()
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer

    def _note(self, sent: asyncio.Future[Any], producer: AIOKafkaProducer) -> None:
        if not sent.cancelled() and sent.exception() is not None and producer is self._producer:
            self._failed = producer
