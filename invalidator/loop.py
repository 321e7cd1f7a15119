"""The invalidation loop: fetch a batch, decode, plan, purge everywhere, hand offsets over.

It holds the loop's logic only (batching, commit placement, pause and retry, seek-back); the
Kafka consumer, the Redis targets and the dead-letter topic come in through small protocols, so
the logic is tested without services (`tests/unit/test_loop.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import TopicPartition

from contracts.catalogue import Catalogue
from contracts.decoding import Rejected
from contracts.events import Event
from invalidator.committer import OffsetCommitter, Offsets
from invalidator.planner import NamespaceKeys, purge_plan
from invalidator.stats import InvalidatorStats

log = logging.getLogger(__name__)

Batch = dict[TopicPartition, list[Any]]
BeforeCommit = Callable[[Offsets], Awaitable[None]]


class RecordSource(Protocol):
    """What the loop needs of a Kafka consumer (aiokafka's `AIOKafkaConsumer` has it)."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Batch: ...

    def assignment(self) -> set[TopicPartition]: ...

    def pause(self, *partitions: TopicPartition) -> None: ...

    def resume(self, *partitions: TopicPartition) -> None: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    async def commit(self, offsets: Offsets) -> None: ...


class PurgeTargets(Protocol):
    """What the loop needs of a region's Redis targets (`RegionTargets` has it)."""

    def names(self) -> set[str]: ...

    async def purge(
        self, by_namespace: NamespaceKeys, *, only: set[str] | None = None
    ) -> set[str]: ...


class DeadLetterSink(Protocol):
    """What the loop needs of the dead-letter topic (`DeadLetters` has it)."""

    async def send(self, rejected: Sequence[tuple[Any, str, str]]) -> None: ...


@dataclass(frozen=True)
class LoopTuning:
    """The loop's knobs (from `InvalidatorSettings`)."""

    batch_max_records: int = 2000
    fetch_timeout_ms: int = 100
    retry_initial_s: float = 0.05
    retry_max_s: float = 5.0


class InvalidationLoop:
    """One region's loop over one consumer: purge every batch everywhere, then let it commit.

    A batch's offsets go to the committer only after every purge of the batch succeeded on
    every target and every rejected record is on the dead-letter topic; the committer commits
    them in the background, so fetching the next batch never waits on a commit.
    """

    def __init__(
        self,
        source: RecordSource,
        targets: PurgeTargets,
        dead_letters: DeadLetterSink,
        *,
        catalogue: Catalogue,
        name: str,
        tuning: LoopTuning = LoopTuning(),
        stats: InvalidatorStats | None = None,
        before_commit: BeforeCommit | None = None,
    ) -> None:
        """source: the consumer (subscribed, started).
        targets: the region's Redis targets.
        dead_letters: where rejected records go.
        catalogue: what each event purges.
        name: the group id, for log lines.
        tuning: batch size, fetch timeout, retry backoff.
        stats: counters to update (a fresh set when omitted).
        before_commit: awaited with each batch's offsets before they go to the committer.
        """
        self._source = source
        self._targets = targets
        self._dead_letters = dead_letters
        self._catalogue = catalogue
        self._name = name
        self._tuning = tuning
        self.stats = stats or InvalidatorStats()
        self._before_commit = before_commit
        self.committer = OffsetCommitter(self._commit_owned, name=name)
        self._stopping = asyncio.Event()
        self.paused = False

    def stop(self) -> None:
        """Ask the loop to return after the batch in hand (abandoned if it is still retrying)."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        """Whether `stop()` was called."""
        return self._stopping.is_set()

    async def run(self, *, every: Callable[[], None] | None = None, every_s: float = 10.0) -> None:
        """Fetch and handle batches until `stop()`, then commit what was purged.

        every: called every `every_s` seconds between batches (the periodic stats line).
        """
        last = time.monotonic()
        try:
            while not self._stopping.is_set():
                batch = await self._source.getmany(
                    timeout_ms=self._tuning.fetch_timeout_ms,
                    max_records=self._tuning.batch_max_records,
                )
                if batch:
                    await self.handle(batch)
                if every is not None and time.monotonic() - last >= every_s:
                    every()
                    last = time.monotonic()
        finally:
            await self.committer.flush()

    async def handle(self, batch: Batch) -> bool:
        """Purge one batch everywhere and hand its offsets to the committer.

        Returns False when asked to stop before the batch was done (nothing of it is committed).
        """
        records = [record for partition in batch.values() for record in partition]
        decode = self._catalogue.schemas.decode
        decoded: list[tuple[Any, Event]] = []
        rejected: list[tuple[Any, str, str]] = []
        for record in records:
            outcome = decode(record.value, record.headers)
            if type(outcome) is Rejected:
                rejected.append((record, outcome.reason.value, outcome.detail))
            else:
                decoded.append((record, outcome))  # type: ignore[arg-type]
        plan = purge_plan(decoded, self._catalogue)
        rejected.extend((record, "unplannable", why) for record, why in plan.unplannable)
        if rejected and not await self._until_done(
            "dead-letter", lambda: _succeeds(self._dead_letters.send(rejected))
        ):
            return False
        if plan.by_namespace and not await self._purge_everywhere(plan.by_namespace):
            return False
        purged_ms = time.time() * 1000
        self.stats.lag_ms.extend(purged_ms - record.timestamp for record in records)
        self.stats.batches += 1
        self.stats.events += len(records)
        self.stats.namespaces_purged += plan.size
        self.stats.dead_lettered += len(rejected)
        offsets = {tp: partition[-1].offset + 1 for tp, partition in batch.items() if partition}
        if self._before_commit is not None:
            await self._before_commit(offsets)
        self.committer.advance(offsets)
        return True

    async def revoked(self, partitions: Collection[TopicPartition]) -> None:
        """Commit what was purged of `partitions` before they go, then forget them."""
        await self.committer.flush(partitions)
        self.committer.forget(partitions)

    def assigned(self, partitions: Collection[TopicPartition]) -> None:
        """Keep newly assigned partitions paused while a retry is under way."""
        if self.paused and partitions:
            self._source.pause(*partitions)

    async def _commit_owned(self, offsets: Offsets) -> None:
        # A partition revoked while its batch was purged belongs to another member now, which
        # re-reads it from the last commit: committing it from here would be refused.
        owned = self._source.assignment()
        mine = {tp: offset for tp, offset in offsets.items() if tp in owned}
        if mine:
            await self._source.commit(mine)

    async def _purge_everywhere(self, by_namespace: NamespaceKeys) -> bool:
        pending = self._targets.names()

        async def purge_pending() -> bool:
            nonlocal pending
            pending = await self._targets.purge(by_namespace, only=pending)
            return not pending

        return await self._until_done("purge", purge_pending)

    async def _until_done(self, what: str, attempt: Callable[[], Awaitable[bool]]) -> bool:
        """Retry `attempt` with capped exponential backoff, partitions paused meanwhile.

        Returns False only when asked to stop first: the batch is then left uncommitted.
        """
        delay = self._tuning.retry_initial_s
        try:
            while not await attempt():
                self.stats.purge_retries += 1
                if not self.paused:
                    log.warning("invalidator %s: %s failing; partitions paused", self._name, what)
                    self._set_paused(True)
                if not await self._idle(delay):
                    return False
                delay = min(delay * 2, self._tuning.retry_max_s)
        finally:
            if self.paused:
                self._set_paused(False)
                log.info("invalidator %s: %s recovered; partitions resumed", self._name, what)
        return True

    async def _idle(self, seconds: float) -> bool:
        """Keep polling the paused consumer (so the group keeps us) for `seconds`.

        Returns False when asked to stop.
        """
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self._stopping.is_set():
                return False
            early = await self._source.getmany(timeout_ms=max(1, int(remaining * 1000)))
            for tp, records in early.items():
                # A partition assigned during the outage may not be paused yet: put back
                # whatever it returned, so nothing is skipped.
                self._source.seek(tp, records[0].offset)
                self._source.pause(tp)
        return not self._stopping.is_set()

    def _set_paused(self, paused: bool) -> None:
        assignment = self._source.assignment()
        if paused:
            self._source.pause(*assignment)
        else:
            self._source.resume(*assignment)
        self.paused = paused


async def _succeeds(operation: Awaitable[None]) -> bool:
    try:
        await operation
    except Exception as error:
        log.warning("operation failed: %s", error)
        return False
    return True
