"""One region's Redis restarted empty while services read through CacheClient and events flow.

Readers get values, never errors; no read is stale: none returns a version older than a write
whose purge was already seen in eu when the read began. The restart wipes the purges eu made
before it together with the entries they guarded, so eu accounts for the events published
after it was back; us accounts for every event.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from redis.exceptions import RedisError

from contracts.example_orders import CATALOGUE, COMPANY_ORDERS, ORDER
from contracts.layout import generation_key
from contracts.namespaces import BoundNamespace
from invalidator import InvalidatorSettings
from producers import CacheClient, EventPublisher, RedisClient, Source
from tests.faults.accounting import Outcome, account, dead_lettered_ids, record_outcome, scaled
from tests.faults.order_stream import OrderStream
from tests.faults.services import REDIS_EU, ServiceProcess, service_process
from tests.integration.invalidators import running_invalidators
from tests.integration.kafka_tools import caught_up
from tests.waiting import wait_until

EVENTS = scaled(300, 1500)
READERS = 8
STREAM_S = scaled(4, 15)


@dataclass(frozen=True)
class _Read:
    began_ns: int
    version: int
    source: Source


async def _restart_empty(server: ServiceProcess, eu: RedisClient) -> None:
    """Stop the server (SIGTERM) and start it again with no data (`ServiceProcess.start_again`);
    fail if it loaded any key at its start."""
    await server.stop(within=30)
    await server.start_again()
    loaded = (await eu.info("persistence")).get("rdb_last_load_keys_loaded")
    assert loaded == 0, f"the restarted eu Redis loaded {loaded} keys: it must start empty"


class _Observer:
    """Readers of the company's orders page through CacheClient, and a watcher of eu's purges."""

    def __init__(
        self, stream: OrderStream, cache: CacheClient, eu: RedisClient, page: BoundNamespace
    ) -> None:
        self.stream, self.cache, self.eu, self.page = stream, cache, eu, page
        self.reads: list[_Read] = []
        self.errors: list[BaseException] = []
        self.seen_purged_ns: dict[int, int] = {}
        """Event index -> when its purge was first seen in eu."""
        self.stop = asyncio.Event()

    async def load(self) -> bytes:
        """The source of truth: the page's version is the number of committed writes."""
        return str(self.stream.writes).encode()

    async def read_pages(self) -> None:
        """Read the page until stopped, recording each outcome."""
        while not self.stop.is_set():
            began = time.time_ns()
            try:
                fetched = await self.cache.fetch(self.page, "page:1", self.load)
            except Exception as error:  # counted: the test's assertion names them
                self.errors.append(error)
                continue
            self.reads.append(_Read(began, int(fetched.value), fetched.source))
            await asyncio.sleep(0.002)  # pacing the readers, not synchronisation

    async def watch_purges(self) -> None:
        """Record when each event's purge is first seen in eu."""
        while not self.stop.is_set():
            unseen = [i for i in range(self.stream.writes) if i not in self.seen_purged_ns]
            try:
                pipe = self.eu.pipeline(transaction=False)
                for i in unseen[:200]:
                    pipe.exists(generation_key(ORDER.bind(order_id=self.stream.order_id(i))))
                found = await pipe.execute()
            except RedisError:
                found = []
            # Taken after the reply: a purge seen here happened before this instant.
            now = time.time_ns()
            for index, exists in zip(unseen, found, strict=False):
                if exists:
                    self.seen_purged_ns[index] = now
            await asyncio.sleep(0.005)  # the watcher's polling interval


async def test_eu_redis_restarted_empty_serves_values_and_no_stale_read(
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    redis_clients: dict[str, RedisClient],
    caches: dict[str, CacheClient],
) -> None:
    eu_server = service_process(REDIS_EU)
    eu, cache = redis_clients["eu"], caches["eu"]
    stream = OrderStream(publisher, events=EVENTS, pace_s=STREAM_S / EVENTS)
    page = COMPANY_ORDERS.bind(company_id=stream.company_id)
    observed = _Observer(stream, cache, eu, page)

    async with running_invalidators(settings, CATALOGUE) as invalidators:
        background = [asyncio.create_task(observed.read_pages()) for _ in range(READERS)]
        background.append(asyncio.create_task(observed.watch_purges()))
        publishing = asyncio.create_task(stream.run())
        try:
            await wait_until(
                lambda: stream.published_at_least(EVENTS // 3), within=60, what="a third"
            )
            restart_began = time.monotonic()
            await _restart_empty(eu_server, eu)
            back_at = len(stream.published)
            await asyncio.wait_for(publishing, timeout=120)

            async def both_caught_up() -> bool:
                groups = [settings.group_id(r) for r in invalidators]
                return all([await caught_up(settings.kafka, g, CATALOGUE.topics()) for g in groups])

            await wait_until(
                both_caught_up, within=90, what="both regions to catch up", interval=0.1
            )
            recover_s = time.monotonic() - restart_began
            final = await cache.fetch(page, "page:1", observed.load)
        finally:
            observed.stop.set()
            publishing.cancel()
            await asyncio.gather(*background, publishing, return_exceptions=True)
            await eu_server.restore()

    errors, reads = observed.errors, observed.reads
    assert errors == [], f"{len(errors)} reads raised, e.g. {errors[0]!r}"
    stale = [
        read
        for read in reads
        if any(
            seen < read.began_ns
            for i, seen in observed.seen_purged_ns.items()
            if i + 1 > read.version
        )
    ]
    assert stale == [], f"{len(stale)} stale reads of {len(reads)}, e.g. {stale[0]}"
    assert int(final.value) == EVENTS, "after catching up, the page is not the last version"
    sources = {source: sum(r.source is source for r in reads) for source in Source}
    assert sources[Source.LOADED] > 0 and sources[Source.HIT] > 0, sources

    events = list(stream.published.items())
    dead = await dead_lettered_ids(settings.kafka, settings.dead_letter_topic)
    in_us = await account(dict(events), {"us": redis_clients["us"]}, dead_lettered=dead)
    in_eu = await account(dict(events[back_at:]), {"eu": eu}, dead_lettered=dead)
    record_outcome(
        Outcome(
            scenario="redis eu restarted empty",
            events=in_us.published,
            lost=len(in_us.lost["us"]) + len(in_eu.lost["eu"]),
            dead_lettered=in_us.dead_lettered,
            recover_s=recover_s,
        )
    )
    in_us.assert_nothing_lost()
    in_eu.assert_nothing_lost()
