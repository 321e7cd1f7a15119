"""The watchdog's engine: from event records to purges looked for in every region's Redis.

Read-only: it sends GET (pipelined) and nothing else, so it can run with a Redis user allowed
`+get` alone. It plans with the invalidator's own planner and catalogue, so it looks for exactly
the namespaces the invalidator should purge.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from redis.exceptions import RedisError

from contracts.catalogue import Catalogue
from contracts.connections import RedisTarget
from contracts.decoding import RecordHeaders, Rejected, RejectReason
from contracts.events import HEADER_EVENT_ID
from contracts.layout import generation_key_of
from contracts.redis_clients import RedisClient, redis_client
from invalidator.planner import purge_plan
from invalidator.settings import WatchSettings
from invalidator.watchdog.results import NOTHING_TO_CHECK, EventResult, PurgeResult, WatchListener
from invalidator.watchdog.sampling import is_sampled
from invalidator.watchdog.verdicts import (
    Judgement,
    Look,
    Outcome,
    Reading,
    event_judgement,
    judge,
)

log = logging.getLogger(__name__)

MAX_LOOK_GAP_MS = 1000.0
"""The longest wait between two looks for one event's purges."""


class EventRecord(Protocol):
    """What the watchdog reads of a Kafka record (aiokafka's `ConsumerRecord` has it)."""

    @property
    def value(self) -> bytes | None: ...

    @property
    def headers(self) -> RecordHeaders: ...

    @property
    def timestamp(self) -> int: ...


@dataclass(eq=False)
class _Purge:
    """One purge being looked for."""

    region: str
    target: str
    namespace: str
    key: str
    read_before: bool = False
    judgement: Judgement | None = None


@dataclass(eq=False)
class _Event:
    """A sampled event whose purges are being looked for."""

    event_id: str
    event_type: str
    event_ms: int
    final_ms: float
    """When the deadline and the grace period are over: the last look."""
    purges: list[_Purge] = field(default_factory=list)
    """Its purges in the regions not reported yet."""
    next_look_ms: float = 0.0
    """When its purges are looked for next (the first time: at the next look)."""
    look_gap_ms: float = 0.0
    """The wait before its last look (doubled after each look that leaves a purge unseen)."""


class Watchdog:
    """Looks, in every region, for the purges of the sampled events it is given."""

    def __init__(
        self,
        catalogue: Catalogue,
        regions: Mapping[str, Sequence[RedisTarget]],
        settings: WatchSettings,
        *,
        listeners: Sequence[WatchListener] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        """catalogue: the invalidator's (what each event purges).
        regions: each region's Redis targets (every one is looked at).
        settings: sampling, deadline, grace, look interval.
        listeners: told of every record and every event judged.
        clock: seconds since the epoch (the tokens' and the records' clock).
        """
        self._catalogue = catalogue
        self._settings = settings
        self._listeners = tuple(listeners)
        self._clock = clock
        self._clients: dict[tuple[str, str], RedisClient] = {
            (region, target.name): redis_client(target, retry_closed_connection=True)
            for region, targets in regions.items()
            for target in targets
        }
        self._events: list[_Event] = []
        self._unreachable: set[tuple[str, str]] = set()

    @property
    def pending(self) -> int:
        """How many sampled events still have a purge to look for (in some region)."""
        return len(self._events)

    def observe(self, record: EventRecord) -> None:
        """Decode `record`; when its event is sampled, look for its purges from the next look on.

        A record whose event-id header is not sampled is counted as read and left undecoded (9
        in 10 at 1 in 10: decoding is most of what reading costs). An undecodable or unplannable
        record is counted (the listeners' `record_skipped`) and skipped: the invalidator
        dead-letters it anyway.
        """
        header_id = _event_id_header(record.headers)
        if header_id is not None and not is_sampled(header_id, self._settings.sample_every):
            self._tell_read(sampled=False)
            return
        decoded = self._catalogue.schemas.decode(record.value, record.headers)
        if isinstance(decoded, Rejected):
            self._tell_skipped(decoded.reason.value)
            return
        envelope = decoded.envelope
        event_id = str(envelope.event_id)
        if not is_sampled(event_id, self._settings.sample_every):
            self._tell_read(sampled=False)
            return
        plan = purge_plan([(event_id, decoded)], self._catalogue)
        if plan.unplannable:
            self._tell_skipped(RejectReason.UNPLANNABLE.value)
            return
        keys = [
            (namespace.name, key)
            for namespace, found in plan.by_namespace
            if namespace.strategy.uses_client_layout
            for key in found
        ]
        if not keys:
            self._tell_skipped(NOTHING_TO_CHECK)
            return
        self._tell_read(sampled=True)
        settings = self._settings
        event = _Event(
            event_id,
            envelope.type,
            record.timestamp,
            record.timestamp + (settings.deadline_s + settings.grace_s) * 1000,
        )
        event.purges = [
            _Purge(region, target, name, key)
            for region, target in self._clients
            for name, key in keys
        ]
        self._events.append(event)

    def _tell_read(self, *, sampled: bool) -> None:
        for listener in self._listeners:
            listener.record_read(sampled=sampled)

    def _tell_skipped(self, reason: str) -> None:
        for listener in self._listeners:
            listener.record_skipped(reason)

    async def look(self) -> None:
        """Read the `{N}:gen` of every pending purge due for a look (all targets in parallel)
        and judge it; tell the listeners of every event whose purges in a region are all judged.

        An event whose purges are not all seen is looked for again after twice its last wait,
        from the look interval up to MAX_LOOK_GAP_MS, and at the end of its grace at the latest:
        a backlog (an invalidator behind) does not make every look read every pending key. The
        lag is the token's time, not the look's, so a later look does not make a purge later.
        """
        now_ms = self._clock() * 1000
        events = [event for event in self._events if event.next_look_ms <= now_ms]
        if not events:
            return
        waiting: dict[tuple[str, str], list[tuple[_Event, _Purge]]] = {}
        for event in events:
            for purge in event.purges:
                if purge.judgement is None:
                    waiting.setdefault((purge.region, purge.target), []).append((event, purge))
        readings = await asyncio.gather(
            *(
                self._read(place, [purge.key for _, purge in found])
                for place, found in waiting.items()
            )
        )
        deadline_ms = self._settings.deadline_s * 1000
        for found, read in zip(waiting.values(), readings, strict=True):
            for (event, purge), reading in zip(found, read, strict=True):
                purge.judgement = judge(
                    reading,
                    event_ms=event.event_ms,
                    read_before=purge.read_before,
                    deadline_ms=deadline_ms,
                    final=now_ms >= event.final_ms,
                )
                purge.read_before = purge.read_before or reading is not Look.UNREACHABLE
        for event in events:
            self._tell_judged_regions(event)
            gap_ms = min(max(2 * event.look_gap_ms, self._settings.interval_ms), MAX_LOOK_GAP_MS)
            event.look_gap_ms = gap_ms
            event.next_look_ms = min(now_ms + gap_ms, event.final_ms)
        self._events = [event for event in self._events if event.purges]

    async def _read(self, place: tuple[str, str], keys: list[str]) -> list[Reading]:
        """What each namespace's `{N}:gen` holds on one target: GET, pipelined, each key once."""
        unique = list(dict.fromkeys(keys))
        pipeline = self._clients[place].pipeline(transaction=False)
        for key in unique:
            pipeline.get(generation_key_of(key))
        try:
            replies = await pipeline.execute()
        except (RedisError, OSError) as error:
            if place not in self._unreachable:
                self._unreachable.add(place)
                log.warning(
                    "watchdog: region %s target %s cannot be read (%s): its purges are unknown "
                    "until it answers",
                    *place,
                    type(error).__name__,
                )
            return [Look.UNREACHABLE] * len(keys)
        if place in self._unreachable:
            self._unreachable.discard(place)
            log.info("watchdog: region %s target %s answers again", *place)
        by_key = {
            key: Look.ABSENT if reply is None else bytes(reply)
            for key, reply in zip(unique, replies, strict=True)
        }
        return [by_key[key] for key in keys]

    def _tell_judged_regions(self, event: _Event) -> None:
        """Tell the listeners of each region whose purges of `event` are all judged, and stop
        looking there (a region that lags or is down delays no other's report)."""
        waiting = {purge.region for purge in event.purges if purge.judgement is None}
        judged: dict[str, list[PurgeResult]] = {}
        for purge in event.purges:
            if purge.judgement is not None and purge.region not in waiting:
                seen = PurgeResult(purge.namespace, purge.key, purge.target, purge.judgement)
                judged.setdefault(purge.region, []).append(seen)
                _log_purge(event, purge.region, seen)
        event.purges = [purge for purge in event.purges if purge.region in waiting]
        for region, purges in judged.items():
            result = EventResult(
                event.event_id,
                event.event_type,
                event.event_ms,
                region,
                event_judgement([purge.judgement for purge in purges]),
                tuple(purges),
            )
            for listener in self._listeners:
                listener.event_checked(result)

    async def settle(self) -> None:
        """Look every interval until no purge is left to look for (each is judged by the end of
        its grace period at the latest)."""
        while self._events:
            await self.look()
            if self._events:
                await asyncio.sleep(self._settings.interval_ms / 1000)  # the look interval

    async def close(self) -> None:
        """Close every Redis client."""
        for client in self._clients.values():
            await client.aclose()


def _event_id_header(headers: RecordHeaders) -> str | None:
    """The event-id header's value (what EventPublisher writes: the envelope's event id), or
    None when the record has none or it is not text."""
    for name, value in headers:
        if name == HEADER_EVENT_ID:
            try:
                return value.decode()
            except UnicodeDecodeError:
                return None
    return None


def _log_purge(event: _Event, region: str, purge: PurgeResult) -> None:
    outcome = purge.judgement.outcome
    if outcome not in (Outcome.MISSING, Outcome.LATE):
        return
    log.log(
        logging.WARNING if outcome is Outcome.MISSING else logging.INFO,
        "watchdog: purge %s: event %s (%s) namespace %s %s, region %s target %s%s",
        "NOT SEEN" if outcome is Outcome.MISSING else "seen late",
        event.event_id,
        event.event_type,
        purge.namespace,
        purge.key,
        region,
        purge.target,
        "" if purge.judgement.lag_ms is None else f", {purge.judgement.lag_ms:.0f} ms after it",
        extra={
            "event_id": event.event_id,
            "event_type": event.event_type,
            "namespace": purge.key,
            "region": region,
            "target": purge.target,
            "outcome": outcome.value,
        },
    )
