"""The invalidation loop: fetch, decode, plan, purge everywhere, hand offsets over.

It holds the loop's logic only (batching, commit placement, pause and retry); the
Kafka consumer, the Redis targets and the dead-letter topic come in through small protocols, so
the logic is tested without services (`tests/unit/test_loop.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import TopicPartition

from contracts import topics
from contracts.catalogue import Catalogue
from contracts.decoding import Rejected, RejectReason
from contracts.events import Event
from invalidator.committer import OffsetCommitter, Offsets
from invalidator.deadletter import Rejection
from invalidator.failures import FailureKind, failure_kind
from invalidator.planner import NamespaceKeys, PurgePlan, merged_plans, purge_plan
from invalidator.stats import InvalidatorStats

log = logging.getLogger(__name__)

Batch = dict[TopicPartition, list[Any]]


class BatchObserver(Protocol):
    """Told of every batch purged everywhere (the metrics' histograms)."""

    def batch_purged(
        self, duration_s: float, oldest_age_s: float, remote_age_s: Mapping[str, float]
    ) -> None:
        """duration_s: the successful purge attempt's time; oldest_age_s: how long ago the
        batch's oldest record was published; remote_age_s: for each region the batch holds
        mirrored events of, how long ago the oldest of them was published there (the record
        timestamp, which MirrorMaker keeps)."""


class BatchTracer(Protocol):
    """Told of every batch purged everywhere, with its events (the trace spans)."""

    def batch_purged(
        self,
        events: Iterable[Event],
        *,
        started_ns: int,
        records: int,
        namespaces: int,
        dead_lettered: int,
    ) -> None:
        """events: the batch's decoded events, in fetch order; started_ns: when the successful
        purge attempt started (time.time_ns()); records: the batch's records; namespaces: the
        namespaces purged; dead_lettered: the records sent to the dead-letter topic."""


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
        tuning: LoopTuning = LoopTuning(),
        stats: InvalidatorStats | None = None,
        tracer: BatchTracer | None = None,
        mirrored_from: Collection[str] = (),
    ) -> None:
        """source: the consumer (subscribed, started).
        targets: the region's Redis targets.
        dead_letters: where rejected records go.
        catalogue: what each event purges.
        name: the group id, for log lines.
        tuning: batch size, fetch timeout, retry backoff.
        stats: counters to update (a fresh set when omitted).
        tracer: told of each batch purged everywhere (the trace spans), if any.
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
        self.observer: BatchObserver | None = None
        """Told of each batch purged everywhere (the metrics, when served: they read this loop,
        so they are attached once it exists)."""
        self.tracer = tracer
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
        """Why the batch in hand is being retried (None while purges succeed)."""
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
                        waiting.append(self.prepare(fetched))
                if purging is not None and current is not None and purging.done():
                    purging, delay = self._retry_if_failed(current, purging.result(), delay)
                    if purging is None:
                        current = None
                if current is None and waiting:
                    current, waiting = _merged(waiting), []
                    purging = asyncio.create_task(self._attempt(current))
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
            self.stats.purge_retries += 1
            retry = asyncio.create_task(self._attempt(batch, after_s=delay))
            return retry, min(delay * 2, self._tuning.retry_max_s)
        self.stats.purge_errors += 1
        return asyncio.create_task(self._attempt(batch, after_s=self._tuning.retry_max_s)), delay

    def prepare(self, batch: Batch) -> _Batch:
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

    async def _attempt(self, batch: _Batch, *, after_s: float = 0.0) -> FailureKind | None:
        """One try, `after_s` from now: the purges on every target not done yet, then the
        rejected records to the dead-letter topic. On success (None) the batch is counted and
        its offsets handed over; otherwise what kind of failure holds it."""
        if after_s:
            await asyncio.sleep(after_s)  # the retry backoff
        failure = None
        started = time.monotonic()
        started_ns = time.time_ns()
        if batch.plan.by_namespace and batch.pending_targets:
            failure = await self._purge_pending(batch)
        if batch.dead_lettered < len(batch.rejected):
            if not await _succeeds(self._dead_letters.send(batch.rejected[batch.dead_lettered :])):
                return failure or FailureKind.OUTAGE
            batch.dead_lettered = len(batch.rejected)
        if failure is not None:
            return failure
        purged_ms = time.time() * 1000
        self.stats.lag_ms.extend(purged_ms - record.timestamp for record in batch.records)
        self.stats.batches += 1
        self.stats.events += len(batch.records)
        self.stats.namespaces_purged += batch.plan.size
        self.stats.dead_lettered += len(batch.rejected)
        self.stats.purged(batch.plan.by_namespace, batch.rejected, batch.offsets, batch.newest_ms)
        if self.observer is not None:
            age_s = (purged_ms - batch.oldest_ms) / 1000
            remote_age_s = {
                region: (purged_ms - oldest) / 1000
                for region, oldest in batch.remote_oldest_ms.items()
            }
            self.observer.batch_purged(time.monotonic() - started, age_s, remote_age_s)
        if self.tracer is not None:
            self.tracer.batch_purged(
                (event for _, event in batch.events),
                started_ns=started_ns,
                records=len(batch.records),
                namespaces=batch.plan.size,
                dead_lettered=len(batch.rejected),
            )
        self.committer.advance(batch.offsets)
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
            self._log_failure(name, *failed)
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

    def _log_failure(self, target: str, kind: FailureKind, error: Exception) -> None:
        if kind is FailureKind.OUTAGE:
            log.warning("invalidator %s: purge on %s failed: %s", self._name, target, error)
        elif _described(error) != self._last_defect:  # the traceback once per distinct error
            self._last_defect = _described(error)
            log.error(
                "invalidator %s: purge on %s failed, and not for an outage: retrying every "
                "%.0f s until fixed",
                self._name,
                target,
                self._tuning.retry_max_s,
                exc_info=error,
            )
        else:
            log.error(
                "invalidator %s: purge on %s still failing: %s",
                self._name,
                target,
                _described(error),
            )

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
            log.warning("invalidator %s: purge failing; partitions paused", self._name)
            self._source.pause(*assignment)
            self.paused_since = time.monotonic()
        else:
            log.info("invalidator %s: purge recovered; partitions resumed", self._name)
            self._source.resume(*assignment)
            self.paused_since = None
        self.paused = paused


_ISOLATION_CONCURRENCY = 64
"""Single-namespace purges in flight at once while a refused batch is isolated."""


def _described(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def _position(record: Any) -> tuple[str, int, int]:
    return record.topic, record.partition, record.offset


async def _succeeds(operation: Awaitable[None]) -> bool:
    try:
        await operation
    except Exception as error:
        log.warning("operation failed: %s", error)
        return False
    return True


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
