"""Both regions writing and purging on the mirrored topology, accounted per event id (the mirrored
fault tests).

Each region has its own cluster (`stack.sh up --mirrored`): a writer per region publishes to its
home cluster, an invalidator process per region reads its own cluster, its own topics and the
other region's as MirrorMaker 2 mirrors them (`INVALIDATOR_MIRRORED_FROM`), and purges its
region's Redis. Every event must end up purged in both regions (or dead-lettered in one).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from aiokafka import TopicPartition

from contracts.example_orders import CATALOGUE
from contracts.layout import generation_key, generation_time_ns
from contracts.namespaces import BoundNamespace
from contracts.topics import ORDERS, mirrored_topic
from invalidator import InvalidatorSettings
from invalidator.operators import start_at_log_end
from producers import EventPublisher, RedisClient
from tests.faults.accounting import Accounting, account, dead_lettered_ids
from tests.faults.processes import kill_if_running, spawn_invalidator, stop_process
from tests.faults.workload import Published, publish_until_acknowledged
from tests.integration.mirrored import (
    MIRRORED_REGIONS,
    MirroredStack,
    log_ends,
    other_region,
    records_by_event_id,
)
from tests.waiting import wait_until

WRITE_PACE_S = 0.02
"""A writer's pause between two acknowledged events (about 40 events/s per region, on a machine
that also runs both clusters, MirrorMaker and the invalidators)."""
STARTED_WITHIN_S = 90.0
"""From spawning an invalidator process to its first assignment."""
STATS_INTERVAL_S = 1.0
"""How often each invalidator process writes its stats file."""


@dataclass
class RegionWriter:
    """A service of one region publishing to its home cluster until stopped, each event retried
    until acknowledged (`publish_until_acknowledged`)."""

    region: str
    publisher: EventPublisher
    published: Published = field(default_factory=Published)

    async def run(self, stop: asyncio.Event) -> None:
        """Publish events WRITE_PACE_S apart until `stop` is set."""
        while not stop.is_set():
            await publish_until_acknowledged(self.publisher, self.published)
            await asyncio.sleep(WRITE_PACE_S)  # pacing the stream, not synchronisation

    def ids(self, since: int = 0) -> list[str]:
        """The acknowledged event ids, from the `since`-th on (a count taken earlier)."""
        return list(self.published.namespaces)[since:]


@dataclass
class MirroredRun:
    """The writers and invalidator processes of both regions, and what they did."""

    stack: MirroredStack
    settings: dict[str, InvalidatorSettings]
    """Region -> its invalidator's settings (its own cluster, mirrored_from the other)."""
    redis: dict[str, RedisClient]
    writers: dict[str, RegionWriter]
    processes: dict[str, subprocess.Popen[bytes]]
    logs: dict[str, Path]
    """Region -> its invalidator's log."""
    stats_files: dict[str, Path]
    """Region -> its invalidator's stats file (InvalidatorStats as JSON, every second)."""
    mirrored_starts: dict[str, dict[TopicPartition, int]]
    """Region -> the log ends of the other region's mirrored orders topic on its cluster when
    the run started (where the run's mirrored records begin)."""
    stop_writing_event: asyncio.Event = field(default_factory=asyncio.Event)
    writing: list[asyncio.Task[None]] = field(default_factory=list)

    def published(self) -> dict[str, BoundNamespace]:
        """Every acknowledged event id of both regions -> the namespace its purge proves."""
        return {
            event_id: namespace
            for writer in self.writers.values()
            for event_id, namespace in writer.published.namespaces.items()
        }

    def counts(self) -> dict[str, int]:
        """Region -> how many events its writer has published so far (marks for `ids`)."""
        return {region: len(writer.published.namespaces) for region, writer in self.writers.items()}

    async def purged_in(self, region: str, ids: list[str]) -> set[str]:
        """Which of `ids` (of either writer) have a generation token in `region`'s Redis."""
        namespaces = self.published()
        pipe = self.redis[region].pipeline(transaction=False)
        for event_id in ids:
            pipe.exists(generation_key(namespaces[event_id]))
        found = await pipe.execute()
        return {event_id for event_id, present in zip(ids, found, strict=True) if present}

    async def wait_published(
        self, count: int, *, within: float = 60, regions: Sequence[str] = MIRRORED_REGIONS
    ) -> None:
        """Until the writer of each of `regions` has `count` more events acknowledged than now."""
        targets = {region: self.counts()[region] + count for region in regions}

        async def enough() -> bool:
            self.check_processes()
            return all(self.counts()[r] >= n for r, n in targets.items())

        await wait_until(enough, within=within, what=f"{count} more events in {','.join(regions)}")

    async def wait_purged(self, region: str, ids: list[str], *, within: float, what: str) -> float:
        """Until every one of `ids` is purged in `region`; returns when (time.monotonic())."""

        async def all_purged() -> bool:
            self.check_processes()
            return len(await self.purged_in(region, ids)) == len(ids)

        await wait_until(all_purged, within=within, what=what, interval=0.1)
        return time.monotonic()

    async def wait_everything_purged(self, *, within: float) -> float:
        """Until every published event is purged in both regions; returns when."""
        ids = list(self.published())
        for region in MIRRORED_REGIONS:
            await self.wait_purged(
                region,
                ids,
                within=within,
                what=f"every event purged in {region} ({self.logs[region]})",
            )
        return time.monotonic()

    async def stop_writing(self) -> None:
        """Stop both writers (each finishes the event it is publishing)."""
        self.stop_writing_event.set()
        await asyncio.wait_for(asyncio.gather(*self.writing), timeout=180)

    def check_processes(self) -> None:
        """Fail at once, with its log's tail, when an invalidator process has exited."""
        for region, process in self.processes.items():
            if process.poll() is not None:
                tail = self.logs[region].read_text()[-3000:]
                raise AssertionError(f"invalidator {region} exited ({process.returncode}): {tail}")

    def log_count(self, region: str, text: str) -> int:
        """How many lines of `region`'s invalidator log contain `text`."""
        return sum(text in line for line in self.logs[region].read_text().splitlines())

    async def mirrored_duplicates(self, into: str) -> tuple[int, int]:
        """(events, extra records) of the other region's writer on `into`'s mirrored orders
        topic: how many of its events arrived more than once, and how many copies too many."""
        records = await records_by_event_id(self.stack.clusters[into], self.mirrored_starts[into])
        mine = set(self.writers[other_region(into)].published.namespaces)
        copies = [len(found) for event_id, found in records.items() if event_id in mine]
        return sum(1 for n in copies if n > 1), sum(n - 1 for n in copies)

    async def remote_purge_latencies_ms(self, region: str) -> dict[str, float]:
        """Event id -> from its original record timestamp (published in the other region, kept
        by MirrorMaker) to its purge in `region` (the time in its namespace's generation
        token), of the other region's events; a namespace purged twice counts the last."""
        records = await records_by_event_id(
            self.stack.clusters[region], self.mirrored_starts[region]
        )
        namespaces = self.writers[other_region(region)].published.namespaces
        latencies: dict[str, float] = {}
        for event_id, namespace in namespaces.items():
            # redis-py types a reply as bytes or str; these clients do not decode responses.
            token = cast(bytes | None, await self.redis[region].get(generation_key(namespace)))
            purged_ns = None if token is None else generation_time_ns(token)
            if purged_ns is not None and event_id in records:
                latencies[event_id] = purged_ns / 1e6 - records[event_id][0].timestamp
        return latencies

    async def account(self) -> Accounting:
        """Where each published event ended up, in both regions (dead letters of both)."""
        dead: set[str] = set()
        for region, settings in self.settings.items():
            dead |= await dead_lettered_ids(
                settings.kafka, settings.dead_letter_topic, group=settings.group_id(region)
            )
        return await account(self.published(), self.redis, dead_lettered=dead)


@contextlib.asynccontextmanager
async def mirrored_run(
    stack: MirroredStack,
    base: InvalidatorSettings,
    redis_clients: dict[str, RedisClient],
    directory: Path,
) -> AsyncIterator[MirroredRun]:
    """Both regions' invalidator processes (groups of `base`'s prefix, started at the log end of
    every topic they read) and both writers, running; on exit the writers stop and the
    processes are SIGTERMed (SIGKILLed when they do not exit).

    stack: the clusters and the link.
    base: the Redis regions and the group prefix.
    redis_clients: region -> a client of its Redis (the accounting's).
    directory: where the invalidators' logs and stats files go.
    """
    settings = {region: stack.settings(base, region) for region in MIRRORED_REGIONS}
    mirrored_starts = {
        region: await log_ends(
            stack.clusters[region], [mirrored_topic(other_region(region), ORDERS)]
        )
        for region in MIRRORED_REGIONS
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    logs = {region: directory / f"invalidator-{region}.log" for region in MIRRORED_REGIONS}
    stats = {region: directory / f"stats-{region}.json" for region in MIRRORED_REGIONS}
    try:
        for region, region_settings in settings.items():
            await start_at_log_end(
                region_settings.kafka,
                region_settings.group_id(region),
                region_settings.event_topics(CATALOGUE),
            )
            processes[region] = spawn_invalidator(
                region_settings,
                region,
                logs[region],
                env={
                    "INVALIDATOR_STATS_FILE": str(stats[region]),
                    "INVALIDATOR_STATS_INTERVAL_S": str(STATS_INTERVAL_S),
                },
            )
        async with contextlib.AsyncExitStack() as publishers:
            writers = {
                region: RegionWriter(
                    region,
                    await publishers.enter_async_context(
                        EventPublisher(stack.clusters[region], source=f"orders-api-{region}")
                    ),
                )
                for region in MIRRORED_REGIONS
            }
            run = MirroredRun(
                stack, settings, redis_clients, writers, processes, logs, stats, mirrored_starts
            )
            for region in MIRRORED_REGIONS:

                async def assigned(region: str = region) -> bool:
                    run.check_processes()
                    return run.log_count(region, ": assigned ") > 0

                await wait_until(
                    assigned,
                    within=STARTED_WITHIN_S,
                    what=f"invalidator {region}'s partitions ({logs[region]})",
                    interval=0.2,
                )
            run.writing = [
                asyncio.create_task(writer.run(run.stop_writing_event))
                for writer in writers.values()
            ]
            try:
                yield run
            finally:
                run.stop_writing_event.set()
                for task in run.writing:
                    if not task.done():
                        task.cancel()
                await asyncio.gather(*run.writing, return_exceptions=True)
        for region, process in processes.items():
            status = await stop_process(
                process, signal.SIGTERM, within=60, what=f"invalidator {region} to exit"
            )
            assert status == 0, f"invalidator {region} exited {status}: {logs[region]}"
    finally:
        kill_if_running(*processes.values())
