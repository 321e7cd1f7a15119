"""The delete-on-event baseline's invalidator: DEL the item's key in a region on every event.

No generations and no guards: one aiokafka consumer per region, reading the orders topic from
the log end as it was at start (manual assignment, no group), deletes each event's key as soon
as the event arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

from contracts.connections import KafkaConnection
from invalidator.operators import end_offsets
from producers import RedisClient

log = logging.getLogger(__name__)

Deleted = Callable[[str, str, int, float], None]
"""Called with (region, item, aggregate version, monotonic time the DEL returned)."""


class NaiveInvalidator:
    """One region's delete-on-event consumer."""

    def __init__(
        self,
        kafka: KafkaConnection,
        *,
        region: str,
        client: RedisClient,
        topic: str,
        key_of: Callable[[str], str | None],
        on_deleted: Deleted,
    ) -> None:
        """kafka: the brokers.
        region: the region this consumer purges.
        client: the region's Redis client.
        topic: the topic the events are published to.
        key_of: the cache key of an event's `company_id`, or None for items it does not cache.
        on_deleted: told about every DEL done.
        """
        self._kafka = kafka
        self._region = region
        self._client = client
        self._topic = topic
        self._key_of = key_of
        self._on_deleted = on_deleted
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Assign every partition at its current log end, then consume in the background."""
        ends = await end_offsets(self._kafka, [self._topic])
        consumer = AIOKafkaConsumer(
            enable_auto_commit=False, fetch_max_wait_ms=100, **self._kafka.client_kwargs()
        )
        await consumer.start()
        self._consumer = consumer
        consumer.assign(list(ends))
        for partition, end in ends.items():
            # Explicit positions: nothing published after start() returns can be skipped.
            consumer.seek(partition, end)
        self._task = asyncio.create_task(self._consume(), name=f"naive-invalidator-{self._region}")

    def check_running(self) -> None:
        """Raise the error that ended the consumer, if it ended."""
        if self._task is not None and self._task.done() and not self._task.cancelled():
            error = self._task.exception()
            raise RuntimeError(f"naive invalidator {self._region} stopped: {error!r}")

    async def stop(self) -> None:
        """Stop consuming."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def _consume(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for record in records:
                    await self._delete(record.value)

    async def _delete(self, raw: bytes) -> None:
        try:
            envelope = json.loads(raw)
            item = str(envelope["payload"]["company_id"])
            version = int(envelope["aggregate_version"])
        except (ValueError, KeyError, TypeError):
            return  # not an event of the example catalogue: none of ours
        key = self._key_of(item)
        if key is None:
            return
        await self._client.delete(key)
        self._on_deleted(self._region, item, version, time.monotonic())
