"""The consistency watchdog in the integration tests: its results collected per event id, the
long-running watchdog in the test's process, a catalogue broken on purpose, events published
with their ids, and namespaces a reader has already given a generation."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Collection, Sequence

from contracts import Catalogue
from contracts.events import DomainEvent, Event, EventEnvelope
from contracts.example_orders import CATALOGUE, OrderCreated, OrderCreatedV1
from contracts.layout import generation_key, generation_ttl, new_generation
from contracts.namespaces import BoundNamespace
from invalidator import InvalidatorSettings
from invalidator.operators import start_at_log_end
from invalidator.watchdog import EventResult, Outcome, WatchService
from producers import EventPublisher, EventToPublish, RedisClient


class CollectedResults:
    """A `WatchListener` keeping every event's outcome per region, by event id."""

    def __init__(self) -> None:
        """Nothing collected yet."""
        self.results: dict[tuple[str, str], EventResult] = {}
        self.skipped: list[str] = []

    def record_read(self, *, sampled: bool) -> None:
        """Nothing to keep."""

    def record_skipped(self, reason: str) -> None:
        """Keep the reason."""
        self.skipped.append(reason)

    def event_checked(self, result: EventResult) -> None:
        """Keep the event's outcome in its region."""
        self.results[(result.event_id, result.region)] = result

    def outcomes(self, region: str, event_ids: Sequence[str]) -> dict[str, Outcome | None]:
        """Each event's outcome in `region` (None: not judged yet)."""
        found = {event_id: self.results.get((event_id, region)) for event_id in event_ids}
        return {
            event_id: None if result is None else result.judgement.outcome
            for event_id, result in found.items()
        }

    def judged(self, regions: Sequence[str], event_ids: Sequence[str]) -> bool:
        """Whether every event has its outcome in every region."""
        return all(
            (event_id, region) in self.results for event_id in event_ids for region in regions
        )


async def judged(
    collected: CollectedResults, regions: Sequence[str], event_ids: Sequence[str]
) -> bool:
    """A `wait_until` condition: every event has its outcome in every region."""
    return collected.judged(regions, event_ids)


async def passed(moment: float) -> bool:
    """A `wait_until` condition: the clock (`time.time()`) is past `moment`."""
    return time.time() > moment


def orders(count: int) -> list[OrderCreated]:
    """`count` OrderCreated events of a fresh run, each of its own order and company."""
    run = uuid.uuid4().hex[:8]
    return [
        OrderCreated(order_id=f"o-{run}-{i}", company_id=f"c-{run}-{i}", total_cents=i)
        for i in range(count)
    ]


@contextlib.asynccontextmanager
async def running_watchdog(
    settings: InvalidatorSettings,
    catalogue: Catalogue,
    listener: CollectedResults,
    *,
    absent_topics: Collection[str] = (),
) -> AsyncIterator[WatchService]:
    """The long-running watchdog (`invalidator watch`) in this process, its group started at
    the log end of every topic (it judges what is published from now on).

    absent_topics: mirrored topics that do not exist yet, awaited (as `invalidator watch`
        passes those `require_topics` found absent).
    """
    service = WatchService(settings, catalogue, listeners=[listener])
    present = [t for t in settings.event_topics(catalogue) if t not in absent_topics]
    await start_at_log_end(settings.kafka, service.group, present)
    task = asyncio.create_task(service.run(absent_topics=absent_topics))
    try:
        yield service
    finally:
        service.stop()
        await asyncio.wait_for(task, timeout=60)


def without_purges_of(event: type[DomainEvent]) -> Catalogue:
    """The example catalogue with every rule of `event` taken out: the invalidator still
    decodes the event, plans nothing for it and commits it (the defect the watchdog exists to
    catch)."""
    namespaces = [
        dataclasses.replace(
            namespace, purged_by=tuple(r for r in namespace.purged_by if r.event is not event)
        )
        for namespace in CATALOGUE.namespaces
    ]
    return Catalogue(namespaces, events=(OrderCreatedV1, event))


async def publish_all(publisher: EventPublisher, events: Sequence[DomainEvent]) -> list[str]:
    """Publish each event (tenant acme, version 1); their event ids, in order."""
    published = []
    for event in events:
        envelope = await publisher.publish(event, tenant="acme", aggregate_version=1)
        published.append(str(envelope.event_id))
    return published


async def publish_batch(publisher: EventPublisher, events: Sequence[DomainEvent]) -> list[str]:
    """Publish the events as one batch (`publish_many`, tenant acme, version 1); their event
    ids, in order."""
    envelopes = await publisher.publish_many(
        [EventToPublish(event, tenant="acme", aggregate_version=1) for event in events]
    )
    return [str(envelope.event_id) for envelope in envelopes]


async def give_generations(
    redis_clients: dict[str, RedisClient], events: Sequence[DomainEvent]
) -> None:
    """In every region, write a generation token now into each namespace the events purge, as
    a reader does on a namespace without one: a token older than the events."""
    for event in events:
        for namespace in _namespaces_of(event):
            ttl_ms = int(generation_ttl(namespace.namespace).total_seconds() * 1000)
            for client in redis_clients.values():
                await client.set(generation_key(namespace), new_generation(), px=ttl_ms)


def _namespaces_of(event: DomainEvent) -> list[BoundNamespace]:
    """The concrete namespaces the example catalogue purges for `event`."""
    envelope = EventEnvelope.wrap(event, source="test", tenant="acme", aggregate_version=1)
    return CATALOGUE.purges_for(Event(envelope=envelope, payload=event))
