"""Debezium as the outbox relay under faults while the service keeps writing, per event id.

Its Kafka Connect worker SIGKILLed mid-stream, then restarted (`stack.sh up --debezium`, the
connector PUT again: a standalone worker keeps its offsets, not the connectors created over
REST): every committed write's event is purged in both regions; none is lost. The events
published again (those after the worker's last offset flush, `offset.flush.interval.ms`) are
counted on the topic and reported as duplicates: a purge more, never a wrong one.

Its connection to PostgreSQL cut (a proxy between them drops it and refuses new ones), then
restored: the connector streams again by itself, with no restart and no PUT, and every event is
purged in both regions.

Time to recover: from the connector streaming again to every event purged in both regions.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from collections.abc import AsyncIterator, Collection

import pytest
from aiokafka import TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts import KafkaConnection
from contracts.events import HEADER_EVENT_ID
from contracts.example_orders import CATALOGUE
from contracts.topics import ORDERS
from invalidator import InvalidatorSettings
from invalidator.operators import end_offsets
from producers import RedisClient
from producers.outbox.debezium import connector_config
from tests.faults.accounting import record_outcome, scaled, settled
from tests.faults.outbox_orders import committed_orders, create_tables, write_order
from tests.faults.proxy import TcpProxy
from tests.integration.debezium import ConnectWorker, LocalConnect, outbox_connector, wait_streaming
from tests.integration.invalidators import running_invalidators
from tests.integration.kafka_tools import records_to_end
from tests.waiting import wait_until

BEFORE_KILL = scaled(200, 3000)
"""Committed writes before the kill (some published, some on their way)."""
WHILE_DOWN = scaled(200, 2000)
"""Committed writes while the worker is down."""
AFTER_RESTART = scaled(100, 1000)
"""Committed writes once it streams again."""
WRITE_PAUSE_S = 0.005
"""Between two writes: paces the service at most ~200 writes/s."""
RECOVER_WITHIN_S = 180.0
CUT_S = scaled(10, 30)
"""How long the connector stays cut off from PostgreSQL (at least; the writes go on)."""


@pytest.fixture
async def outbox_engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the test's PostgreSQL database, with the outbox table and the service's."""
    engine = create_async_engine(postgres_url)
    await create_tables(engine)
    yield engine
    await engine.dispose()


class WritingService:
    """A service committing one order (and its outbox row) per transaction until stopped."""

    def __init__(self, engine: AsyncEngine, run: str) -> None:
        self.engine = engine
        self.run = run
        self.written = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin writing in the background."""
        self._task = asyncio.create_task(self._write())

    async def stop(self) -> None:
        """Stop after the write in hand."""
        self._stop.set()
        if self._task is not None:
            await self._task

    async def wait_written(self, count: int, *, what: str) -> None:
        """Until `count` writes have committed."""

        async def enough() -> bool:
            return self.written >= count

        await wait_until(enough, within=120, what=what)

    async def _write(self) -> None:
        while not self._stop.is_set():
            async with self.engine.begin() as connection:
                await write_order(connection, self.run, self.written)
            self.written += 1
            await asyncio.sleep(WRITE_PAUSE_S)  # pacing, not a synchronisation


async def _times_on_topic(
    kafka: KafkaConnection, start: dict[TopicPartition, int], event_ids: Collection[str]
) -> collections.Counter[str]:
    """How many records of each of `event_ids` are on the topic from `start` on."""
    counts: collections.Counter[str] = collections.Counter()
    for record in await records_to_end(kafka, start):
        event_id = dict(record.headers or ()).get(HEADER_EVENT_ID, b"").decode()
        if event_id in event_ids:
            counts[event_id] += 1
    return counts


async def test_connect_sigkilled_mid_stream_and_restarted_loses_no_event(
    debezium_worker: ConnectWorker,
    outbox_engine: AsyncEngine,
    settings: InvalidatorSettings,
    redis_clients: dict[str, RedisClient],
) -> None:
    worker = LocalConnect()
    service = WritingService(outbox_engine, uuid.uuid4().hex[:8])
    start = await end_offsets(settings.kafka, [ORDERS])
    postgres_url = outbox_engine.url.render_as_string(hide_password=False)
    async with (
        running_invalidators(settings, CATALOGUE),
        outbox_connector(debezium_worker, postgres_url) as connector,
    ):
        service.start()
        try:
            await service.wait_written(BEFORE_KILL, what="writes")
            worker.kill()  # mid-stream: rows are being committed and published
            at_kill = service.written
            await service.wait_written(at_kill + WHILE_DOWN, what="writes while it is down")
            restart_began = time.monotonic()
            await worker.start_again()
            await debezium_worker.put_connector(connector_config(connector))
            await wait_streaming(debezium_worker, connector)
            streaming_at = time.monotonic()
            at_restart = service.written
            await service.wait_written(at_restart + AFTER_RESTART, what="writes after restart")
        finally:
            await service.stop()
            if worker.pid() is None:
                await worker.start_again()

        published = await committed_orders(outbox_engine, service.run)
        assert len(published) == service.written

        accounting, recover_s = await settled(
            published, redis_clients, since=streaming_at, within=RECOVER_WITHIN_S
        )

    on_topic = await _times_on_topic(settings.kafka, start, published)
    duplicated = {event_id: n for event_id, n in on_topic.items() if n > 1}
    note = (
        f"{sum(duplicated.values()) - len(duplicated)} duplicate records of {len(duplicated)}"
        f" of {len(published)} events ({at_kill} written before the kill,"
        f" {at_restart - at_kill} while down); restart to streaming"
        f" {streaming_at - restart_began:.1f} s"
    )
    print(f"Connect SIGKILL: {note}")
    record_outcome(
        accounting.outcome("debezium: Connect SIGKILLed mid-stream", recover_s, note=note)
    )
    missing_on_topic = [event_id for event_id in published if event_id not in on_topic]
    assert not missing_on_topic, f"never published: {missing_on_topic[:5]}"
    accounting.assert_nothing_lost()


@pytest.mark.long
async def test_connect_cut_off_from_postgresql_streams_again_by_itself_losing_no_event(
    debezium_worker: ConnectWorker,
    outbox_engine: AsyncEngine,
    settings: InvalidatorSettings,
    redis_clients: dict[str, RedisClient],
) -> None:
    url = outbox_engine.url
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    through_proxy = url.set(host="127.0.0.1", port=proxy.port)
    service = WritingService(outbox_engine, uuid.uuid4().hex[:8])
    try:
        async with (
            running_invalidators(settings, CATALOGUE),
            outbox_connector(
                debezium_worker, through_proxy.render_as_string(hide_password=False)
            ) as connector,
        ):
            service.start()
            try:
                await service.wait_written(BEFORE_KILL, what="writes")
                await proxy.cut()
                cut_ends = time.monotonic() + CUT_S
                at_cut = service.written
                await service.wait_written(at_cut + WHILE_DOWN, what="writes while cut off")
                await asyncio.sleep(max(0.0, cut_ends - time.monotonic()))  # the cut's length
                await proxy.restore()
                restored_at = time.monotonic()
                await wait_streaming(debezium_worker, connector, within=RECOVER_WITHIN_S)
                streaming_at = time.monotonic()
                at_restore = service.written
                await service.wait_written(at_restore + AFTER_RESTART, what="writes after")
            finally:
                await service.stop()
            published = await committed_orders(outbox_engine, service.run)
            accounting, recover_s = await settled(
                published, redis_clients, since=streaming_at, within=RECOVER_WITHIN_S
            )
            note = (
                f"cut {restored_at - cut_ends + CUT_S:.0f} s with {at_restore - at_cut} writes;"
                f" streaming again {streaming_at - restored_at:.1f} s after the link came back"
            )
            print(f"Connect cut off from PostgreSQL: {note}")
            record_outcome(
                accounting.outcome(
                    "debezium: Connect cut off from PostgreSQL", recover_s, note=note
                )
            )
            accounting.assert_nothing_lost()
    finally:
        await proxy.cut()
