"""`invalidator watch` as a long-running process: the event topics read as a consumer group of
the watchdog's own, every sampled event's purges looked for, the metrics and probes served."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from contracts.catalogue import Catalogue
from contracts.kafka_clients import kafka_consumer
from invalidator.awaited_topics import subscribe_when_present
from invalidator.endpoints import Endpoints
from invalidator.settings import InvalidatorSettings
from invalidator.watchdog.checker import Watchdog
from invalidator.watchdog.metrics import WatchMetrics
from invalidator.watchdog.results import WatchListener

log = logging.getLogger(__name__)

_COMMIT_INTERVAL_S = 5.0
"""How often the watchdog's group commits what it has read: a restart looks for the purges of
at most this much again, or misses the pending ones (it samples; it does not account)."""


class WatchService:
    """The watchdog process: its group, its looks, its metrics. Never commits to, reads the
    offsets of, or joins an invalidator's group."""

    def __init__(
        self,
        settings: InvalidatorSettings,
        catalogue: Catalogue,
        *,
        listeners: Sequence[WatchListener] = (),
    ) -> None:
        """settings: the invalidator's (Kafka, regions, the `watch` tuning, metrics_host).
        catalogue: the invalidator's.
        listeners: told of what the watchdog reads and concludes, besides its metrics.
        """
        self.settings = settings
        self.catalogue = catalogue
        self.group = settings.watchdog_group()  # a SettingsError before anything connects
        self.metrics = WatchMetrics(
            targets={
                region: [target.name for target in targets]
                for region, targets in settings.regions.items()
            },
            pending=lambda: self.watchdog.pending,
            registry=CollectorRegistry(),
        )
        self.watchdog = Watchdog(
            catalogue, settings.regions, settings.watch, listeners=[self.metrics, *listeners]
        )
        self.running = False
        self.finished = False
        self.iterated_at = time.monotonic()
        self.paused_since: float | None = None  # the probes' view: the watchdog never pauses
        self.metrics_address: tuple[str, int] | None = None
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Commit what was read and leave the group (SIGTERM, SIGINT)."""
        self._stop.set()

    async def run(self, *, absent_topics: Collection[str] = ()) -> None:
        """Read and look until `stop()`; a new group starts at the log end (it judges the
        events published from its start on).

        absent_topics: mirrored topics MirrorMaker has not created yet, subscribed to once they
            exist (`invalidator.awaited_topics`); a new topic is read from its start.
        """
        consumer = kafka_consumer(
            self.settings.kafka,
            group_id=self.group,
            client_id=self.group,
            auto_offset_reset="latest",
        )
        wanted = self.settings.event_topics(self.catalogue)
        absent = set(absent_topics) & set(wanted)
        topics = [t for t in wanted if t not in absent]
        async with contextlib.AsyncExitStack() as running:
            running.push_async_callback(self.watchdog.close)
            running.push_async_callback(consumer.stop)
            port = self.settings.watch.metrics_port
            if port is not None:
                endpoints = Endpoints(
                    self.metrics,
                    self,
                    assigned=lambda: bool(consumer.assignment()),
                    max_paused_s=self.settings.ready_max_paused_s,
                    max_idle_s=self.settings.alive_max_idle_s,
                )
                running.push_async_callback(endpoints.stop)
                self.metrics_address = await endpoints.start(self.settings.metrics_host, port)
            await consumer.start()
            listener = _NewTopicsFromTheirStart(consumer, absent)
            consumer.subscribe(topics=topics, listener=listener)
            if absent:
                watching = asyncio.create_task(
                    subscribe_when_present(
                        consumer, wanted, absent, name=f"watchdog {self.group}", listener=listener
                    )
                )
                running.push_async_callback(_cancel, watching)
            looking = asyncio.create_task(self._look_until_stopped())
            running.push_async_callback(_cancel, looking)
            log.info(
                "watchdog %s started: topics=%s regions=%s sampling 1 in %d, deadline %.3g s",
                self.group,
                ",".join(topics),
                ",".join(sorted(self.settings.regions)),
                self.settings.watch.sample_every,
                self.settings.watch.deadline_s,
            )
            self.running = True
            try:
                await self._read_until_stopped(consumer)
            finally:
                self.running = False
                self.finished = True
                try:
                    await consumer.commit()
                except KafkaError as error:  # leaving anyway: the next start reads it again
                    log.warning("watchdog %s: final commit failed: %s", self.group, error)
        log.info("watchdog %s stopped", self.group)

    async def _read_until_stopped(self, consumer: AIOKafkaConsumer) -> None:
        committed_at = time.monotonic()
        while not self._stop.is_set():
            batch = await consumer.getmany(
                timeout_ms=self.settings.fetch_timeout_ms,
                max_records=self.settings.batch_max_records,
            )
            for records in batch.values():
                for record in records:
                    self.watchdog.observe(record)
            self.iterated_at = time.monotonic()
            if time.monotonic() - committed_at >= _COMMIT_INTERVAL_S:
                committed_at = time.monotonic()
                try:
                    await consumer.commit()
                except KafkaError as error:  # a later commit supersedes it
                    log.warning("watchdog %s: commit failed: %s", self.group, error)

    async def _look_until_stopped(self) -> None:
        interval_s = self.settings.watch.interval_ms / 1000
        while not self._stop.is_set():
            try:
                await self.watchdog.look()
            except Exception:  # a defect: logged, the looks go on
                log.exception("watchdog %s: a look failed", self.group)
            await asyncio.sleep(interval_s)  # the look interval


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait until it has ended (before the clients it uses are closed)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class _NewTopicsFromTheirStart(ConsumerRebalanceListener):  # type: ignore[misc]
    """Reads a topic that appeared after the watchdog started from its start, where the group
    never committed: every record of it came after that start (the group starts the others at
    their log end)."""

    def __init__(self, consumer: AIOKafkaConsumer, awaited: Collection[str]) -> None:
        self._consumer = consumer
        self._awaited = set(awaited)

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        """Nothing to do: the watchdog commits on its own schedule."""

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        """Seek the awaited topics' partitions without a committed offset to their start."""
        fresh = [
            tp
            for tp in assigned
            if tp.topic in self._awaited and await self._consumer.committed(tp) is None
        ]
        if fresh:
            await self._consumer.seek_to_beginning(*fresh)
