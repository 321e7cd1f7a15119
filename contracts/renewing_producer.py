"""An idempotent Kafka producer that starts a new producer session after a send it gave up on.

aiokafka's idempotent producer numbers each partition's batches. A batch that fails without
reaching the broker (it expired while its partition had no leader: the cluster was down for
longer than `request_timeout_ms`) keeps its sequence number spent, and from then on the broker
refuses every batch of that partition with OutOfOrderSequenceNumber, for as long as the
process lives. A batch the broker refused (a record over the topic's `max.message.bytes`)
leaves the same gap. Kafka's Java client bumps the producer epoch in both cases; aiokafka does
not.

`RenewingSession` restores the Java client's behaviour the only way aiokafka allows: after a
send failed, the next send first stops the producer and starts a new one, which gets a new
producer id and numbers from zero again. `RenewingProducer` sends through it with aiokafka;
`EventPublisher` keeps its FastStream broker in one. The failed send itself is reported to its
caller, who sends it again (with the same event id, so a duplicate is harmless).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from aiokafka import AIOKafkaProducer

from contracts.partitions import partition_of

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes]]
Record = tuple[str, bytes, bytes | None, Headers]
"""One record to send: (topic, value, key, headers)."""


class Session(Protocol):
    """A producer session: an aiokafka producer, or a FastStream broker holding one."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=Session)


class RenewingSession(Generic[S]):
    """The current session made by `new_session`, replaced by a new one before its next use
    once a send through it has failed (`failed`).

    The replacement waits until the old session has stopped, so nothing of it is still in
    flight when the new one sends: sends of one key stay in order.
    """

    def __init__(self, new_session: Callable[[], S], *, name: str) -> None:
        """new_session: builds an unstarted session, the same way each time (an idempotent
            `acks="all"` producer).
        name: what the log lines call it (e.g. `outbox relay`).
        """
        self._new_session = new_session
        self._name = name
        self.session = new_session()
        """The session in use (unstarted until `start`)."""
        self._failed: S | None = None
        """The session a send failed in, until it is replaced."""
        self._renewing = asyncio.Lock()
        self.renewals = 0
        """How many times a new session replaced one whose send failed."""

    async def start(self) -> None:
        """Start the first session (connects; raises when the brokers cannot be reached)."""
        await _start(self.session)

    async def stop(self) -> None:
        """Flush what is pending and stop the current session."""
        await self.session.stop()

    async def current(self) -> S:
        """The session to send with: a new, started one in place of one marked failed (raises
        what starting it raises while the brokers cannot be reached; the next call tries
        again)."""
        if self._failed is not self.session:
            return self.session
        async with self._renewing:
            if self._failed is self.session:
                log.warning(
                    "%s: a send failed; starting a new producer session (aiokafka keeps a "
                    "failed batch's sequence number spent, and the broker would refuse every "
                    "later one)",
                    self._name,
                )
                await self.session.stop()
                fresh = self._new_session()
                await _start(fresh)
                self.session, self._failed = fresh, None
                self.renewals += 1
        return self.session

    def failed(self, session: S) -> None:
        """Note that a send through `session` failed: the next `current()` replaces it (when it
        is still the current one)."""
        if session is self.session:
            self._failed = session


async def _start(session: Session) -> None:
    """Start `session`; stop it again (no unclosed client) when it cannot start."""
    try:
        await session.start()
    except BaseException:
        await session.stop()
        raise


class RenewingProducer:
    """Sends through an aiokafka producer made by `new_producer`, and replaces that producer
    before the next send once one of its sends has failed (`RenewingSession`).

    Use `start()`/`stop()`, or `async with`.
    """

    def __init__(self, new_producer: Callable[[], AIOKafkaProducer], *, name: str) -> None:
        """new_producer: builds an unstarted idempotent producer (`acks="all"`), the same way
            each time.
        name: what the log lines call this producer (e.g. `outbox relay`).
        """
        self._sessions = RenewingSession(new_producer, name=name)

    @property
    def renewals(self) -> int:
        """How many times a new session replaced one whose send failed."""
        return self._sessions.renewals

    async def start(self) -> None:
        """Start the first session (connects; raises when the brokers cannot be reached)."""
        await self._sessions.start()

    async def stop(self) -> None:
        """Flush what is pending and stop the current session."""
        await self._sessions.stop()

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
        producer = await self._sessions.current()
        sent: asyncio.Future[Any] = await producer.send(
            topic, value, key=key, headers=list(headers) if headers is not None else None
        )
        sent.add_done_callback(lambda done: self._note(done, producer))
        return sent

    async def send_many(self, records: Sequence[Record]) -> list[Any]:
        """Enqueue `records` on one session, then wait for every acknowledgement: per record
        its RecordMetadata, or the exception its send failed with (the next send then starts a
        new session first).

        Cheaper per record than `send` and a gather: one failure check for the lot, and a wait
        that wakes once per acknowledged batch, not once per record. Raises as `send` does
        before enqueuing.
        """
        producer = await self._sessions.current()
        counts: dict[str, int | None] = {}
        sent = []
        for topic, value, key, headers in records:
            if topic not in counts:
                counts[topic] = _partition_count(producer, topic)
            count = counts[topic]
            # The default partitioner's choice, computed here (`contracts.partitions`): aiokafka's
            # own costs a third of a relayed record's CPU. Unknown topic: aiokafka waits for it.
            partition = None if key is None or count is None else partition_of(key, count)
            sent.append(
                await producer.send(
                    topic, value, key=key, partition=partition, headers=list(headers)
                )
            )
        results: list[Any] = []
        for future in sent:
            try:
                results.append(await future)
            except Exception as error:
                results.append(error)
        if any(isinstance(result, Exception) for result in results):
            self._sessions.failed(producer)
        return results

    def _note(self, sent: asyncio.Future[Any], producer: AIOKafkaProducer) -> None:
        if not sent.cancelled() and sent.exception() is not None:
            self._sessions.failed(producer)


def _partition_count(producer: AIOKafkaProducer, topic: str) -> int | None:
    """How many partitions `topic` has in the producer's metadata; None while it has none."""
    partitions = producer.client.cluster.partitions_for_topic(topic)
    return len(partitions) if partitions else None
