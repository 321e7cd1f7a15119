"""The invalidation loop: fetch, decode, plan, purge everywhere, hand offsets over.

It holds the loop's logic only (batching, commit placement, pause and retry); the
Kafka consumer, the Redis targets and the dead-letter topic come in through small protocols, so
the logic is tested without services (`tests/unit/test_loop.py`). What it produced goes out as
data: a `BatchOutcome` per batch to the listeners it was built with, a `RejectReason` per
dead letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import TopicPartition

from contracts import topics
from contracts.catalogue import Catalogue
from contracts.decoding import Rejected, RejectReason
from contracts.events import Event
from invalidator.committer import OffsetCommitter, Offsets
from invalidator.failures import FailureKind, dead_letter_failure_kind, failure_kind
from invalidator.outcome import BatchListener, BatchOutcome, Rejection
from invalidator.planner import NamespaceKeys, PurgePlan, merged_plans, purge_plan
from invalidator.settings import InvalidatorSettings
from invalidator.stats import InvalidatorStats

log = logging.getLogger(__name__)

Batch = dict[TopicPartition, list[Any]]


class RecordSource(Protocol):
    """What the loop needs of a Kafka consumer (aiokafka's `AIOKafkaConsumer` has it)."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Batch: ...

    def assignment(self) -> set[TopicPartition]: ...

    def pause(self, *partitions: TopicPartition) -> None: ...

    def resume(self, *partitions: TopicPartition) -> None: ...

    async def commit(self, offsets: Offsets) -> None: ...


class PurgeTargets(Protocol):
    """What the loop needs of a region's Redis targets (`RegionTargets` has it)."""

    def names(self) -> set[str]: ...

    async def purge(
        self, by_namespace: NamespaceKeys, *, only: set[str] | None = None
    ) -> dict[str, Exception]: ...


class DeadLetterSink(Protocol):
    """What the loop needs of the dead-letter topic (`DeadLetters` has it)."""

    async def send(self, rejected: Sequence[Rejection]) -> None: ...


@dataclass(frozen=True)
class LoopTuning:
    """The loop's knobs. Their defaults are the settings' (`from_settings`): none here."""

    batch_max_records: int
    fetch_timeout_ms: int
    retry_initial_s: float
    retry_max_s: float
    commit_interval_s: float

    @classmethod
    def from_settings(cls, settings: InvalidatorSettings) -> LoopTuning:
        """The knobs as `settings` set them (`INVALIDATOR_BATCH_MAX_RECORDS`, ...)."""
        return cls(
            batch_max_records=settings.batch_max_records,
            fetch_timeout_ms=settings.fetch_timeout_ms,
            retry_initial_s=settings.retry_initial_s,
            retry_max_s=settings.retry_max_s,
            commit_interval_s=settings.commit_interval_ms / 1000,
        )


@dataclass(eq=False)
class _Batch:
    """A fetched batch, decoded and planned, and how far its purge has got."""

    records: list[Any]
    events: list[tuple[Any, Event]]
    """(record, event) of every record that decoded."""
    plan: PurgePlan[Any]
    rejected: list[Rejection]
    """(record, reason, detail) of every record that goes to the dead-letter topic."""
    offsets: Offsets
    """Partition -> the offset after the batch's last record there."""
    newest_ms: dict[TopicPartition, int]
    """Partition -> the timestamp of the batch's last record there."""
    oldest_ms: float
    """The timestamp of the batch's oldest record (each partition's first)."""
    pending_targets: set[str]
    """The targets whose purge has not succeeded yet."""
    remote_oldest_ms: dict[str, float]
    """Region -> the timestamp of the batch's oldest record mirrored from there."""
    dead_lettered: int = 0
    """How many of `rejected` are on the dead-letter topic."""


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
        tuning: LoopTuning,
        stats: InvalidatorStats | None = None,
        listeners: Sequence[BatchListener] = (),
        mirrored_from: Collection[str] = (),
    ) -> None:
        """source: the consumer (subscribed, started).
        targets: the region's Redis targets.
        dead_letters: where rejected records go.
        catalogue: what each event purges.
        name: the group id, for log lines.
        tuning: batch size, fetch timeout, retry backoff, commit interval
            (`LoopTuning.from_settings`).
        stats: counters to update (a fresh set when omitted); told of each batch first.
        listeners: told of each batch purged everywhere, after the stats (the metrics'
            histograms, the trace spans).
        mirrored_from: the regions whose topics are mirrored into this cluster (their records'
            age at purge is reported per region).
        """
        self._source = source
        self._targets = targets
        self._dead_letters = dead_letters
        self._catalogue = catalogue
        self._name = name
        self._tuning = tuning
        self._mirrored_from = frozenset(mirrored_from)
        self._origin_region: dict[str, str | None] = {}
        self.stats = stats or InvalidatorStats()
        self._listeners: tuple[BatchListener, ...] = (self.stats, *listeners)
        self.committer = OffsetCommitter(
            self._commit_owned, name=name, interval_s=tuning.commit_interval_s
        )
        self._stopping = asyncio.Event()
        self.paused = False
        self.paused_since: float | None = None
        """time.monotonic() when the partitions were paused (None while not paused)."""
        self.running = False
        """True while `run` is fetching."""
        self.finished = False
        """True once `run` has returned (or raised)."""
        self.iterated_at = time.monotonic()
        """time.monotonic() at the loop's latest iteration (it iterates at least every fetch
        timeout while it runs)."""
        self.failure: FailureKind | None = None
        """Why the batch in hand is being retried (None while its purge and dead letters
        succeed)."""
        self._last_defect = ""

    def stop(self) -> None:
        """Ask the loop to return after the batch in hand (abandoned if it is still retrying)."""
        self._stopping.set()

    async def run(self, *, every: Callable[[], None] | None = None, every_s: float = 10.0) -> None:
        """Fetch and purge until `stop()`, then commit what was purged.

        Fetching never waits for a purge: while one batch is purged (at most one at a time),
        the loop goes on fetching, decoding and planning; when the purge ends, everything
        fetched meanwhile is purged next, as one batch (up to `batch_max_records` are held, then
        fetching waits). So the CPU work overlaps the Redis round trips, a busy moment makes
        bigger batches that coalesce better, and a quiet one purges each event as it comes.
        A batch whose purge fails is retried with capped exponential backoff, every partition
        paused meanwhile and still polled (the group keeps this member); whatever was fetched
        waits behind it, in order. Only this method fetches.

        every: called every `every_s` seconds (the periodic stats line).
        """
        last = time.monotonic()
        stopping = asyncio.create_task(self._stopping.wait())
        fetching: asyncio.Task[Batch] | None = None
        purging: asyncio.Task[FailureKind | None] | None = None
        current: _Batch | None = None
        waiting: list[_Batch] = []
        delay = self._tuning.retry_initial_s
        self.running = True
        try:
            while not self._stopping.is_set():
                self.iterated_at = time.monotonic()
                held = sum(len(batch.records) for batch in waiting)
                if fetching is None and (self.paused or held < self._tuning.batch_max_records):
                    fetching = asyncio.create_task(
                        self._source.getmany(
                            timeout_ms=self._tuning.fetch_timeout_ms,
                            max_records=self._tuning.batch_max_records,
                        )
                    )
                running = {task for task in (fetching, purging) if task is not None}
                await asyncio.wait({stopping, *running}, return_when=asyncio.FIRST_COMPLETED)
                if fetching is not None and fetching.done():
                    fetched, fetching = fetching.result(), None
                    if fetched:
                        waiting.append(self.decode_and_plan(fetched))
                if purging is not None and current is not None and purging.done():
                    purging, delay = self._retry_if_failed(current, purging.result(), delay)
                    if purging is None:
                        current = None
                if current is None and waiting:
                    current, waiting = _merged(waiting), []
                    purging = asyncio.create_task(self._purge_attempt(current))
                if every is not None and time.monotonic() - last >= every_s:
                    every()
                    last = time.monotonic()
        finally:
            self.running = False
            self.finished = True
            stopping.cancel()
            if purging is not None and not self.paused:
                await purging  # the batch in hand is finished; one still retrying is abandoned
            elif purging is not None:
                purging.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await purging
            if fetching is not None:
                await fetching  # what it brings stays uncommitted: read again by the next owner
            if self.paused:
                log.warning(
                    "invalidator %s: stopped while a purge was failing; its batch stays "
                    "uncommitted, for the partitions' next owner",
                    self._name,
                )
                self._source.resume(*self._source.assignment())
                self.paused = False
                self.paused_since = None
            await self.committer.flush()

    def _retry_if_failed(
        self, batch: _Batch, failure: FailureKind | None, delay: float
    ) -> tuple[asyncio.Task[FailureKind | None] | None, float]:
        """After an attempt: (the retry's task or None when it succeeded, the next delay).
        An outage is retried with capped exponential backoff; a defect every `retry_max_s`, in
        case the operator fixes it meanwhile. Either way the partitions stay paused."""
        self.failure = failure
        if failure is None:
            self._set_paused(False)
            return None, self._tuning.retry_initial_s
        self._set_paused(True)
        if failure is FailureKind.OUTAGE:
            retry = asyncio.create_task(self._purge_attempt(batch, after_s=delay))
            return retry, min(delay * 2, self._tuning.retry_max_s)
        retry = asyncio.create_task(self._purge_attempt(batch, after_s=self._tuning.retry_max_s))
        return retry, delay

    def decode_and_plan(self, batch: Batch) -> _Batch:
        """Decode and plan a fetched batch (CPU only, no I/O). A record that fails to decode
        or to plan, whatever the error, is rejected: it goes to the dead-letter topic, never
        stops the loop."""
        records = [record for partition in batch.values() for record in partition]
        decode = self._catalogue.schemas.decode
        decoded: list[tuple[Any, Event]] = []
        rejected: list[Rejection] = []
        for record in records:
            try:
                outcome = decode(record.value, record.headers)
            except Exception as error:  # a defect in decoding code (an upcast, a validator)
                log.exception(
                    "decoding %s[%d]@%d failed",
                    *_position(record),
                    extra={"offsets": {f"{record.topic}[{record.partition}]": record.offset}},
                )
                rejected.append(
                    (record, RejectReason.DECODE_FAILED, f"{type(error).__name__}: {error}")
                )
                continue
            if type(outcome) is Rejected:
                rejected.append((record, outcome.reason, outcome.detail))
            else:
                decoded.append((record, outcome))  # type: ignore[arg-type]
        plan = purge_plan(decoded, self._catalogue)
        unplannable = RejectReason.UNPLANNABLE
        rejected.extend((record, unplannable, why) for record, why in plan.unplannable)
        offsets = {tp: partition[-1].offset + 1 for tp, partition in batch.items() if partition}
        newest = {tp: partition[-1].timestamp for tp, partition in batch.items() if partition}
        oldest = min(
            (partition[0].timestamp for partition in batch.values() if partition),
            default=time.time() * 1000,
        )
        remote_oldest: dict[str, float] = {}
        if self._mirrored_from:
            for tp, partition in batch.items():
                region = self._origin(tp.topic)
                if region is not None and partition:
                    first = partition[0].timestamp
                    remote_oldest[region] = min(remote_oldest.get(region, first), first)
        return _Batch(
            records,
            decoded,
            plan,
            rejected,
            offsets,
            newest,
            oldest,
            self._targets.names(),
            remote_oldest,
        )

    def _origin(self, topic: str) -> str | None:
        """The region `topic` is mirrored from (None for this cluster's own topics)."""
        if topic not in self._origin_region:
            origin = topics.mirror_origin(topic, self._mirrored_from)
            self._origin_region[topic] = origin[0] if origin else None
        return self._origin_region[topic]

    async def _purge_attempt(self, batch: _Batch, *, after_s: float = 0.0) -> FailureKind | None:
        """One try, `after_s` from now: the purges on every target not done yet, then the
        rejected records to the dead-letter topic. On success (None) the listeners are told of
        the batch and its offsets handed over; otherwise the worst kind of failure that holds
        it (a defect before an outage), each failure counted by what failed."""
        if after_s:
            await asyncio.sleep(after_s)  # the retry backoff
        failure = None
        started = time.monotonic()
        started_ns = time.time_ns()
        if batch.plan.by_namespace and batch.pending_targets:
            failure = await self._purge_pending(batch)
            if failure is FailureKind.OUTAGE:
                self.stats.purge_retries += 1
            elif failure is not None:
                self.stats.purge_errors += 1
        if batch.dead_lettered < len(batch.rejected):
            sending = await self._send_dead_letters(batch)
            if sending is FailureKind.DEFECT or failure is None:
                failure = sending
        if failure is not None:
            return failure
        outcome = BatchOutcome(
            records=batch.records,
            events=batch.events,
            purged=batch.plan.by_namespace,
            namespaces_purged=batch.plan.size,
            rejected=batch.rejected,
            offsets=batch.offsets,
            newest_ms=batch.newest_ms,
            oldest_ms=batch.oldest_ms,
            remote_oldest_ms=batch.remote_oldest_ms,
            started_ns=started_ns,
            duration_s=time.monotonic() - started,
            purged_ms=time.time() * 1000,
        )
        for listener in self._listeners:
            listener.batch_purged(outcome)
        self.committer.advance(batch.offsets)
        return None

    async def _send_dead_letters(self, batch: _Batch) -> FailureKind | None:
        """Send the batch's rejected records not sent yet; the kind of failure, if any (counted
        apart from the purge's: a dead-letter topic the invalidator may not write is a defect
        of its own, never a purge retry)."""
        try:
            await self._dead_letters.send(batch.rejected[batch.dead_lettered :])
        except Exception as error:
            kind = dead_letter_failure_kind(error)
            if kind is FailureKind.OUTAGE:
                self.stats.dead_letter_retries += 1
            else:
                self.stats.dead_letter_errors += 1
            self._log_failure("sending dead letters", kind, error)
            return kind
        batch.dead_lettered = len(batch.rejected)
        return None

    async def _purge_pending(self, batch: _Batch) -> FailureKind | None:
        """Purge the batch on its pending targets; the worst failure left, if any."""
        failures = await self._targets.purge(batch.plan.by_namespace, only=batch.pending_targets)
        batch.pending_targets = set(failures)
        worst = None
        for name, error in sorted(failures.items()):
            kind = failure_kind(error)
            failed = (
                (kind, error)
                if kind is not FailureKind.REFUSED
                else await self._isolate(batch, name, error)
            )
            if failed is None:
                batch.pending_targets.discard(name)
                continue
            self._log_failure(f"purge on {name}", *failed)
            if worst is not FailureKind.DEFECT:
                worst = failed[0]
        return worst

    async def _isolate(
        self, batch: _Batch, target: str, error: Exception
    ) -> tuple[FailureKind, Exception] | None:
        """After `target` refused the batch's purge for what a key holds (WRONGTYPE), purge the
        batch's namespaces there one at a time: the refused ones' events are rejected with the
        reply, the rest are purged. If anything else fails meanwhile, nothing is rejected and
        that failure is returned: the batch is retried as a whole on that target."""
        log.warning(
            "invalidator %s: %s refused a purge (%s); purging its namespaces one at a time",
            self._name,
            target,
            error,
        )
        singles = [(ns, key) for ns, keys in batch.plan.by_namespace for key in keys]
        refused: dict[tuple[str, str], str] = {}
        for start in range(0, len(singles), _ISOLATION_CONCURRENCY):
            chunk = singles[start : start + _ISOLATION_CONCURRENCY]
            results = await asyncio.gather(
                *(self._targets.purge(((ns, (key,)),), only={target}) for ns, key in chunk)
            )
            for (ns, key), failures in zip(chunk, results, strict=True):
                if target not in failures:
                    continue
                kind = failure_kind(failures[target])
                if kind is not FailureKind.REFUSED:
                    return kind, failures[target]
                refused[(ns.name, key)] = str(failures[target])
        already = {id(record) for record, _, _ in batch.rejected}
        for record, event in batch.events:
            hits = [
                f"{target} refused the purge of {key}: {refused[(ns.name, key)]}"
                for ns, key in self._catalogue.purge_keys(event)
                if (ns.name, key) in refused
            ]
            if hits and id(record) not in already:
                batch.rejected.append((record, RejectReason.PURGE_REFUSED, "; ".join(hits)))
                already.add(id(record))
                self.stats.purge_refused += 1
        return None

    def _log_failure(self, what: str, kind: FailureKind, error: Exception) -> None:
        """what: the step that failed, e.g. `purge on eu-main`."""
        if kind is FailureKind.OUTAGE:
            log.warning("invalidator %s: %s failed: %s", self._name, what, error)
        elif _described(error) != self._last_defect:  # the traceback once per distinct error
            self._last_defect = _described(error)
            log.error(
                "invalidator %s: %s failed, and not for an outage (%s): retrying every "
                "%.0f s until fixed",
                self._name,
                what,
                self._last_defect,
                self._tuning.retry_max_s,
                exc_info=error,
            )
        else:
            log.error("invalidator %s: %s still failing: %s", self._name, what, _described(error))

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

    def _set_paused(self, paused: bool) -> None:
        if paused == self.paused:
            return
        assignment = self._source.assignment()
        if paused:
            log.warning("invalidator %s: batch failing; partitions paused", self._name)
            self._source.pause(*assignment)
            self.paused_since = time.monotonic()
        else:
            log.info("invalidator %s: batch recovered; partitions resumed", self._name)
            self._source.resume(*assignment)
            self.paused_since = None
        self.paused = paused


_ISOLATION_CONCURRENCY = 64
"""Single-namespace purges in flight at once while a refused batch is isolated."""


def _described(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def _position(record: Any) -> tuple[str, int, int]:
    return record.topic, record.partition, record.offset


def _merged(batches: list[_Batch]) -> _Batch:
    """Consecutive batches as one (fetch order kept: later offsets win)."""
    if len(batches) == 1:
        return batches[0]
    offsets: Offsets = {}
    newest: dict[TopicPartition, int] = {}
    remote_oldest: dict[str, float] = {}
    for batch in batches:
        offsets.update(batch.offsets)
        newest.update(batch.newest_ms)
        for region, oldest in batch.remote_oldest_ms.items():
            remote_oldest[region] = min(remote_oldest.get(region, oldest), oldest)
    return _Batch(
        [record for batch in batches for record in batch.records],
        [event for batch in batches for event in batch.events],
        merged_plans([batch.plan for batch in batches]),
        [rejected for batch in batches for rejected in batch.rejected],
        offsets,
        newest,
        min(batch.oldest_ms for batch in batches),
        set().union(*(batch.pending_targets for batch in batches)),
        remote_oldest,
    )
