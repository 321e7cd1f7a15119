"""The Invalidator: one region's consumer loop (fetch, decode, plan, purge, commit).

Built on aiokafka directly rather than a FastStream subscriber: the loop needs batches, manual
commits placed after the purges, pause/resume while Redis is down, and seeks; FastStream's
acknowledgement policies commit per message and either before handling or even on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, RebalanceInProgressError

from contracts.catalogue import BoundNamespace, Catalogue
from contracts.decoding import Rejected
from contracts.events import Event
from invalidator.deadletter import DeadLetters
from invalidator.planner import purge_plan
from invalidator.settings import InvalidatorSettings
from invalidator.stats import InvalidatorStats
from invalidator.targets import RegionTargets

log = logging.getLogger(__name__)

Offsets = dict[TopicPartition, int]
BeforeCommit = Callable[[Offsets], Awaitable[None]]


class Invalidator:
    """Consumes the catalogue's topics as group `invalidator.<region>` and purges the region.

    Offsets are committed only after every purge of the batch succeeded on every target
    (at-least-once; purges are idempotent, so a replay costs cache misses, never correctness).
    """

    def __init__(
        self,
        settings: InvalidatorSettings,
        *,
        region: str,
        catalogue: Catalogue | None = None,
        before_commit: BeforeCommit | None = None,
    ) -> None:
        """settings: connections and tuning.
        region: which region's Redis targets to purge (one consumer group per region).
        catalogue: the namespaces; loaded from `settings.catalogue` when omitted.
        before_commit: awaited with the offsets about to be committed (tracing, fault tests).
        """
        self.settings = settings
        self.region = region
        self.catalogue = catalogue or settings.load_catalogue()
        self.group_id = settings.group_id(region)
        self.stats = InvalidatorStats()
        self.assigned = asyncio.Event()
        self._targets_config = settings.targets(region)
        self._before_commit = before_commit
        self._stopping = asyncio.Event()
        self._paused = False
        self._consumer: Any = None

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand and leave the group (SIGTERM, SIGINT)."""
        self._stopping.set()

    async def run(self) -> None:
        """Run until `stop()`; commits what was purged and nothing more."""
        kafka = self.settings.kafka.client_kwargs()
        self._consumer = consumer = AIOKafkaConsumer(
            group_id=self.group_id,
            client_id=f"{self.group_id}.{socket.gethostname()}.{os.getpid()}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            fetch_max_wait_ms=100,
            **kafka,
        )
        consumer.subscribe(topics=self.catalogue.topics(), listener=_Rebalance(self))
        targets = RegionTargets(self.region, self._targets_config)
        dead_letters = DeadLetters(
            self.settings.kafka, topic=self.settings.dead_letter_topic, group_id=self.group_id
        )
        async with contextlib.AsyncExitStack() as running:
            await dead_letters.start()
            running.push_async_callback(dead_letters.stop)
            running.push_async_callback(targets.close)
            await consumer.start()
            running.push_async_callback(consumer.stop)
            log.info(
                "invalidator %s started: topics=%s targets=%s",
                self.group_id,
                ",".join(self.catalogue.topics()),
                ",".join(sorted(targets.names())),
            )
            await self._loop(targets, dead_letters)
        self._report_stats()
        log.info("invalidator %s stopped", self.group_id)

    async def _loop(self, targets: RegionTargets, dead_letters: DeadLetters) -> None:
        last_stats = time.monotonic()
        while not self._stopping.is_set():
            batch = await self._consumer.getmany(
                timeout_ms=self.settings.fetch_timeout_ms,
                max_records=self.settings.batch_max_records,
            )
            if batch:
                await self._handle(batch, targets, dead_letters)
            if time.monotonic() - last_stats >= self.settings.stats_interval_s:
                self._report_stats()
                last_stats = time.monotonic()

    def _report_stats(self) -> None:
        log.info("invalidator %s: %s", self.group_id, self.stats.summary())
        if self.settings.stats_file is not None:
            self.stats.write(self.settings.stats_file)

    async def _handle(
        self,
        batch: dict[TopicPartition, list[Any]],
        targets: RegionTargets,
        dead_letters: DeadLetters,
    ) -> None:
        records = [record for partition in batch.values() for record in partition]
        decoded: list[tuple[Any, Event]] = []
        rejected: list[tuple[Any, str, str]] = []
        for record in records:
            outcome = self.catalogue.schemas.decode(record.value)
            if isinstance(outcome, Rejected):
                rejected.append((record, outcome.reason.value, outcome.detail))
            else:
                decoded.append((record, outcome))
        plan = purge_plan(decoded, self.catalogue)
        rejected.extend((record, "unplannable", why) for record, why in plan.unplannable)
        if rejected and not await self._until_done(
            "dead-letter", lambda: _succeeds(dead_letters.send(rejected))
        ):
            return
        if plan.namespaces and not await self._purge_everywhere(targets, plan.namespaces):
            return
        purged_at = datetime.now(UTC)
        for _, event in decoded:
            lag = (purged_at - event.envelope.occurred_at).total_seconds() * 1000
            self.stats.lag_ms.append(lag)
        self.stats.batches += 1
        self.stats.events += len(records)
        self.stats.namespaces_purged += len(plan.namespaces)
        self.stats.dead_lettered += len(rejected)
        offsets = {tp: partition[-1].offset + 1 for tp, partition in batch.items() if partition}
        if self._before_commit is not None:
            await self._before_commit(offsets)
        await self._commit(offsets)

    async def _purge_everywhere(
        self, targets: RegionTargets, namespaces: Sequence[BoundNamespace]
    ) -> bool:
        pending = targets.names()

        async def purge_pending() -> bool:
            nonlocal pending
            pending = await targets.purge(namespaces, only=pending)
            return not pending

        return await self._until_done("purge", purge_pending)

    async def _until_done(self, what: str, attempt: Callable[[], Awaitable[bool]]) -> bool:
        """Retry `attempt` with capped exponential backoff, partitions paused meanwhile.

        Returns False only when asked to stop first: the batch is then left uncommitted.
        """
        delay = self.settings.retry_initial_s
        try:
            while not await attempt():
                self.stats.purge_retries += 1
                if not self._paused:
                    log.warning(
                        "invalidator %s: %s failing; partitions paused", self.group_id, what
                    )
                    self._set_paused(True)
                if not await self._idle(delay):
                    return False
                delay = min(delay * 2, self.settings.retry_max_s)
        finally:
            if self._paused:
                self._set_paused(False)
                log.info("invalidator %s: %s recovered; partitions resumed", self.group_id, what)
        return True

    async def _idle(self, seconds: float) -> bool:
        """Keep polling the paused consumer (so the group keeps us) for `seconds`.

        Returns False when asked to stop.
        """
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self._stopping.is_set():
                return False
            early = await self._consumer.getmany(timeout_ms=max(1, int(remaining * 1000)))
            for tp, records in early.items():
                # A partition assigned during the outage may not be paused yet: put back
                # whatever it returned, so nothing is skipped.
                self._consumer.seek(tp, records[0].offset)
                self._consumer.pause(tp)
        return not self._stopping.is_set()

    def _set_paused(self, paused: bool) -> None:
        assignment = self._consumer.assignment()
        if paused:
            self._consumer.pause(*assignment)
        else:
            self._consumer.resume(*assignment)
        self._paused = paused

    async def _commit(self, offsets: Offsets) -> None:
        owned = {tp: offset for tp, offset in offsets.items() if tp in self._consumer.assignment()}
        if not owned:
            return
        try:
            await self._consumer.commit(owned)
        except (CommitFailedError, RebalanceInProgressError, IllegalStateError) as error:
            # The partitions moved to another member, which re-reads from the last commit and
            # purges again: a duplicate purge costs a miss, a skipped one would cost correctness.
            self.stats.commit_failures += 1
            log.warning(
                "invalidator %s: commit failed (%s); will be re-purged", self.group_id, error
            )


async def _succeeds(operation: Awaitable[None]) -> bool:
    try:
        await operation
    except Exception as error:
        log.warning("operation failed: %s", error)
        return False
    return True


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits happen after each purged batch, so a revoke has nothing purged left to commit."""

    def __init__(self, owner: Invalidator) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        log.info("invalidator %s: revoked %d partitions", self._owner.group_id, len(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if self._owner._paused and assigned:
            self._owner._consumer.pause(*assigned)
        log.info(
            "invalidator %s: assigned %s",
            self._owner.group_id,
            ",".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(assigned)) or "nothing",
        )
        self._owner.assigned.set()
