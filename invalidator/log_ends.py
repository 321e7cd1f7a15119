"""The log end offsets of the group consumer's partitions, read from the broker in the background.

The group consumer learns a partition's log end only from its fetches, and a paused partition is
not fetched: its lag would freeze at the moment of the pause, which is when it matters. A watch
asks the broker every few seconds with a consumer of its own (in no group), and the metrics read
the last answer, so a scrape never waits on Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from contracts.connections import KafkaConnection
from contracts.kafka_clients import kafka_consumer

log = logging.getLogger(__name__)

LOG_END_REFRESH_S = 2.0
"""How often the log ends are read from the broker."""


class LogEndWatch:
    """The broker's log end of each partition `partitions()` names, refreshed every
    `interval_s` while started; `log_end` reads the last answer without I/O."""

    def __init__(
        self,
        kafka: KafkaConnection,
        *,
        partitions: Callable[[], set[TopicPartition]],
        client_id: str,
        interval_s: float = LOG_END_REFRESH_S,
    ) -> None:
        """kafka: the cluster. partitions: the partitions to watch now (the assignment).
        client_id: the watching consumer's Kafka client id. interval_s: seconds between reads.
        """
        self._kafka = kafka
        self._partitions = partitions
        self._client_id = client_id
        self._interval_s = interval_s
        self._ends: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def log_end(self, partition: TopicPartition) -> int | None:
        """The last log end read for `partition`; None before the first read of it."""
        return self._ends.get(partition)

    async def start(self) -> None:
        """Start reading in the background (connecting is part of it: the metrics and probes
        do not wait for Kafka)."""
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        """Stop reading and disconnect."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def refresh(self, consumer: AIOKafkaConsumer) -> None:
        """Read the log ends of the watched partitions once with `consumer` (the last ones stay
        on a failure)."""
        partitions = sorted(self._partitions())
        if not partitions:
            return
        try:
            ends = await asyncio.wait_for(
                consumer.end_offsets(partitions), timeout=max(5.0, 2 * self._interval_s)
            )
        except (KafkaError, TimeoutError, OSError) as error:
            if not self._failing:  # once per outage, not every few seconds
                log.warning("cannot read the log ends (the lag keeps the last ones): %r", error)
            self._failing = True
            return
        if self._failing:
            log.info("reading the log ends again")
        self._failing = False
        self._ends = {tp: ends[tp] for tp in partitions if tp in ends}

    async def _watch(self) -> None:
        consumer = kafka_consumer(self._kafka, client_id=self._client_id)
        try:
            while True:
                try:
                    await consumer.start()
                    break
                except (KafkaError, OSError) as error:
                    if not self._failing:
                        log.warning("cannot connect to read the log ends (retrying): %r", error)
                    self._failing = True
                    await consumer.stop()
                    consumer = kafka_consumer(self._kafka, client_id=self._client_id)
                await asyncio.sleep(self._interval_s)  # a period between attempts
            while True:
                await self.refresh(consumer)
                # A period between reads, not a wait on a condition.
                await asyncio.sleep(self._interval_s)
        finally:
            await consumer.stop()
