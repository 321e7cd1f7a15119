"""The Invalidator: one region's consumer service (group membership, lifecycle, signals).

Built on aiokafka directly rather than a FastStream subscriber: the loop needs batches, manual
commits placed after the purges, pause/resume while Redis is down, and seeks; FastStream's
acknowledgement policies commit per message and either before handling or even on failure.
The loop's logic is in `invalidator.loop`; the parts it runs on are built in
`invalidator.wiring`; this module starts them, joins the group and runs the loop on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Collection

from aiokafka import ConsumerRebalanceListener, TopicPartition

from contracts.catalogue import Catalogue
from invalidator.awaited_topics import subscribe_when_present
from invalidator.loop import InvalidationLoop, LoopTuning
from invalidator.settings import InvalidatorSettings
from invalidator.start_position import start_uncommitted
from invalidator.stats import InvalidatorStats
from invalidator.wiring import GroupConsumer, InvalidatorParts, production_parts

log = logging.getLogger(__name__)


class Invalidator:
    """Consumes the catalogue's topics as group `invalidator.<region>` and purges the region.

    Offsets are committed only after every purge of their batch succeeded on every target
    (at-least-once; purges are idempotent, so a replay costs cache misses, never correctness),
    in the background, at most one commit in flight; synchronously on revoke and on stop.
    """

    def __init__(
        self, settings: InvalidatorSettings, *, region: str, catalogue: Catalogue | None = None
    ) -> None:
        """settings: connections and tuning.
        region: which region's Redis targets to purge (one consumer group per region); an
            unknown one raises SettingsError here, before anything connects.
        catalogue: the namespaces; loaded from `settings.catalogue` when omitted.
        """
        settings.targets(region)
        self.settings = settings
        self.region = region
        self.catalogue = catalogue or settings.load_catalogue()
        self.group_id = settings.group_id(region)
        self.stats = InvalidatorStats()
        self.assigned = asyncio.Event()
        self._stop_requested = False
        self._loop: InvalidationLoop | None = None
        self.metrics_address: tuple[str, int] | None = None
        """Where /metrics, /healthz and /readyz are served, once running (metrics_port set)."""

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand (or abandon it, uncommitted, while it is
        still retrying) and leave the group (SIGTERM, SIGINT)."""
        self._stop_requested = True
        if self._loop is not None:
            self._loop.stop()

    async def run(self, *, absent_topics: Collection[str] = ()) -> None:
        """Run on the production parts (`invalidator.wiring.production_parts`) until `stop()`;
        commits what was purged and nothing more.

        absent_topics: as for `run_on`.
        """
        await self.run_on(
            production_parts(self.settings, region=self.region), absent_topics=absent_topics
        )

    async def run_on(self, parts: InvalidatorParts, *, absent_topics: Collection[str] = ()) -> None:
        """Run on `parts` until `stop()`: start them, join the group, purge, then commit what
        was purged and stop every part, also when a start fails.

        parts: built and not started, in this event loop (`production_parts`, or stand-ins).
        absent_topics: topics to read that do not exist yet (mirrored topics, which MirrorMaker
            creates): the group joins without them, and takes them on once the cluster has
            them. Never subscribed to while absent, since a metadata request for a topic
            creates it on a broker with `auto.create.topics.enable`.
        """
        settings, consumer = self.settings, parts.consumer
        loop = self._loop = InvalidationLoop(
            consumer,
            parts.targets,
            parts.dead_letters,
            catalogue=self.catalogue,
            name=self.group_id,
            tuning=LoopTuning.from_settings(settings),
            stats=self.stats,
            listeners=parts.listeners,
            mirrored_from=settings.mirrored_from,
        )
        if self._stop_requested:
            loop.stop()
        wanted = settings.event_topics(self.catalogue)
        absent = set(absent_topics) & set(wanted)
        listener = _Rebalance(self, loop, consumer)
        consumer.subscribe(topics=[t for t in wanted if t not in absent], listener=listener)
        async with contextlib.AsyncExitStack() as running:
            # Each stop is registered before any start: a start that fails (Kafka unreachable)
            # still closes every client, instead of "Unclosed AIOKafkaConsumer" errors at exit.
            running.push_async_callback(consumer.stop)
            running.push_async_callback(parts.dead_letters.stop)
            await parts.dead_letters.start()
            running.push_async_callback(parts.targets.close)
            if parts.metrics is not None:
                running.push_async_callback(parts.metrics.stop)
                self.metrics_address = await parts.metrics.start(loop, self.stats)
            await consumer.start()
            if absent:
                name = f"invalidator {self.group_id}"
                watching = asyncio.create_task(
                    subscribe_when_present(consumer, wanted, absent, name=name, listener=listener)
                )
                running.callback(watching.cancel)
            # Everything built so far (catalogue, models, clients) lives as long as the process:
            # out of the collector's sight, a full collection no longer walks it (pauses of
            # tens of ms otherwise land on the purge path).
            gc.collect()
            gc.freeze()
            log.info(
                "invalidator %s started: topics=%s targets=%s",
                self.group_id,
                ",".join(wanted),
                ",".join(sorted(parts.targets.names())),
            )
            await loop.run(every=self._report_stats, every_s=settings.stats_interval_s)
        self._report_stats()
        log.info("invalidator %s stopped", self.group_id)

    def _report_stats(self) -> None:
        if self._loop is not None:
            self.stats.commit_failures = self._loop.committer.failures
        log.info("invalidator %s: %s", self.group_id, self.stats.summary())
        if self.settings.stats_file is not None:
            self.stats.write(self.settings.stats_file)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what was purged of revoked partitions before they go (the standard place)."""

    def __init__(self, owner: Invalidator, loop: InvalidationLoop, consumer: GroupConsumer) -> None:
        self._owner = owner
        self._loop = loop
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._loop.revoked(revoked)
        self._owner.stats.forget(revoked)
        log.info(
            "invalidator %s: revoked %d partitions",
            self._owner.group_id,
            len(revoked),
            extra={"partitions": _named(revoked)},
        )

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # Partitions never committed start where INVALIDATOR_START_FROM says.
        try:
            await start_uncommitted(self._consumer, assigned, self._owner.settings.start_from)
        except Exception:
            if not assigned <= self._consumer.assignment():
                # The subscription changed meanwhile (a mirrored topic appeared): these
                # partitions are no longer assigned, and the rebalance that follows assigns
                # again, where the start is decided again.
                log.info(
                    "invalidator %s: subscription changed while starting partitions; "
                    "the next rebalance assigns again",
                    self._owner.group_id,
                )
                return
            # aiokafka would swallow the error and go on from the reset position: stop instead,
            # so that the group's start is decided again, never by accident.
            log.exception("invalidator %s: start position not set; stopping", self._owner.group_id)
            self._owner.stop()
            return
        self._loop.assigned(assigned)
        self._owner.stats.starting(
            {tp: await self._consumer.position(tp) for tp in assigned}, time.time() * 1000
        )
        named = _named(assigned)
        log.info(
            "invalidator %s: assigned %s",
            self._owner.group_id,
            ",".join(named) or "nothing",
            extra={"partitions": named},
        )
        self._owner.assigned.set()


def _named(partitions: set[TopicPartition]) -> list[str]:
    """`topic[partition]` of each, sorted: the form of log lines and their `partitions` field."""
    return [f"{tp.topic}[{tp.partition}]" for tp in sorted(partitions)]
