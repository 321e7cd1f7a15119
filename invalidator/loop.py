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
from invalidator.planner import NamespaceKeys, PurgePlan, purge_plan
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
    commit_interval_s: float = 0.0


@dataclass(eq=False)
class _Batch:
    """A fetched batch, decoded and planned, and how far its purge has got."""

    records: list[Any]
    plan: PurgePlan[Any]
    rejected: list[tuple[Any, str, str]]
    """(record, reason, detail) of every record that goes to the dead-letter topic."""
    offsets: Offsets
    """Partition -> the offset after the batch's last record there."""
    pending_targets: set[str]
    """The targets whose purge has not succeeded yet."""
    dead_lettered: bool = False


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
        self.committer = OffsetCommitter(
            self._commit_owned, name=name, interval_s=tuning.commit_interval_s
        )
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

        While one batch is purged (a task), the next is fetched, decoded and planned: the CPU
        work overlaps the Redis round trips. Purges stay in fetch order, one batch at a time,
        and only this method fetches (retries included), so a seek never races a fetch.

        every: called every `every_s` seconds between batches (the periodic stats line).
        """
        last = time.monotonic()
        in_flight: tuple[_Batch, asyncio.Task[bool]] | None = None
        try:
            while not self._stopping.is_set():
                fetched = await self._source.getmany(
                    timeout_ms=self._tuning.fetch_timeout_ms,
                    max_records=self._tuning.batch_max_records,
                )
                prepared = self.prepare(fetched) if fetched else None
                if in_flight is not None and (prepared is not None or in_flight[1].done()):
                    if not await self._complete(*in_flight):
                        return  # asked to stop during a retry: the batch stays uncommitted
                    in_flight = None
                if prepared is not None:
                    in_flight = (prepared, asyncio.create_task(self._attempt(prepared)))
                if every is not None and time.monotonic() - last >= every_s:
                    every()
                    last = time.monotonic()
            if in_flight is not None:
                await self._complete(*in_flight)  # the batch in hand is finished, not retried
        finally:
            await self.committer.flush()

    async def handle(self, batch: Batch) -> bool:
        """Purge one batch everywhere (retrying) and hand its offsets to the committer.

        Returns False when asked to stop before the batch was done (nothing of it is committed).
        """
        prepared = self.prepare(batch)
        return await self._complete(prepared, asyncio.create_task(self._attempt(prepared)))

    def prepare(self, batch: Batch) -> _Batch:
        """Decode and plan a fetched batch (CPU only, no I/O)."""
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
        offsets = {tp: partition[-1].offset + 1 for tp, partition in batch.items() if partition}
        return _Batch(records, plan, rejected, offsets, self._targets.names())

    async def _attempt(self, batch: _Batch) -> bool:
        """One try: the rejected records to the dead-letter topic, then the purges on every
        target not done yet. On success the batch is counted and its offsets handed over."""
        if batch.rejected and not batch.dead_lettered:
            if not await _succeeds(self._dead_letters.send(batch.rejected)):
                return False
            batch.dead_lettered = True
        if batch.plan.by_namespace and batch.pending_targets:
            batch.pending_targets = await self._targets.purge(
                batch.plan.by_namespace, only=batch.pending_targets
            )
            if batch.pending_targets:
                return False
        purged_ms = time.time() * 1000
        self.stats.lag_ms.extend(purged_ms - record.timestamp for record in batch.records)
        self.stats.batches += 1
        self.stats.events += len(batch.records)
        self.stats.namespaces_purged += batch.plan.size
        self.stats.dead_lettered += len(batch.rejected)
        if self._before_commit is not None:
            await self._before_commit(batch.offsets)
        self.committer.advance(batch.offsets)
        return True

    async def _complete(self, batch: _Batch, first_attempt: asyncio.Task[bool]) -> bool:
        """Wait for the first try of `batch`; retry it (paused, with backoff) while it fails.

        Returns False only when asked to stop during the retries.
        """
        if await first_attempt:
            return True
        what = "dead-letter" if not batch.dead_lettered else "purge"
        return await self._retry(what, lambda: self._attempt(batch))

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

    async def _retry(self, what: str, attempt: Callable[[], Awaitable[bool]]) -> bool:
        """The first try failed: retry `attempt` with capped exponential backoff, every
        partition paused meanwhile (still polled, so the group keeps this member).

        Returns False only when asked to stop first: the batch is then left uncommitted.
        """
        log.warning("invalidator %s: %s failing; partitions paused", self._name, what)
        self._set_paused(True)
        delay = self._tuning.retry_initial_s
        try:
            while True:
                self.stats.purge_retries += 1
                if not await self._idle(delay):
                    return False
                if await attempt():
                    return True
                delay = min(delay * 2, self._tuning.retry_max_s)
        finally:
            self._set_paused(False)
            log.info("invalidator %s: %s recovered; partitions resumed", self._name, what)

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
