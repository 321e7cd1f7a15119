"""The latency figure: publish -> purged in every region, against bare produce -> consume.

At each rate, the same paced producer (aiokafka, acks=all, idempotent, as EventPublisher) sends
Zipf-distributed orders events for a fixed time; one event in `probe_every` is a probe on a new
company. Bare: an aiokafka consumer in this process, assigned at the log end, stamps each probe
when it arrives (after `json.loads` of every value). This system: both regions' invalidators
run as processes; a probe has landed when its company-orders generation key was written in every
region, as Redis reports it (keyspace notifications from every master: bench/keyspace_watch.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from bench.keyspace_watch import KeyspaceWatch
from bench.machine import percentiles_ms
from bench.orders_load import CompanyPicker, OrderRecord, bare_producer, order_record
from bench.processes import BenchProcess, region_invalidators, running
from bench.progress import wait_stable
from contracts import KafkaConnection, topics
from contracts.example_orders import COMPANY_ORDERS
from contracts.layout import generation_key
from invalidator.operators import end_offsets
from invalidator.settings import InvalidatorSettings

POOL_SIZE = 5_000
PACE_S = 0.001
PROBES_PER_S = 400
JOIN_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class LatencyParams:
    """What the latency figure runs."""

    rates: tuple[int, ...] = (1_000, 20_000)
    seconds: float = 30.0
    settle_timeout_s: float = 180.0
    """How long, after the last send, probes may take to land before they count as late."""


@dataclass
class Probe:
    """A probe event: when it was sent and when it was seen."""

    sent_at: float
    seen_at: float | None = None
    seen_in: dict[str, float] = field(default_factory=dict)
    """When it landed in each region (monotonic), for the regions where it did."""


class EventSource:
    """Background events cycled from a pre-built pool, and a new probe every `probe_every`."""

    def __init__(self, run_id: str, *, probe_every: int) -> None:
        """run_id: prefixes the ids.
        probe_every: one event in this many is a probe.
        """
        picker = CompanyPicker("zipf", run_id=run_id)
        self._pool: Iterator[OrderRecord] = itertools.cycle(
            [order_record(company, f"{run_id}-bg{company}") for company in picker.pick(POOL_SIZE)]
        )
        self._run_id = run_id
        self._probe_every = probe_every
        self._count = 0

    def next(self) -> tuple[OrderRecord, bool]:
        """The next record to send and whether it is a probe."""
        self._count += 1
        if self._count % self._probe_every:
            return next(self._pool), False
        n = self._count // self._probe_every
        return order_record(f"{self._run_id}-p{n}", f"{self._run_id}-po{n}"), True


async def send_paced(
    producer: Any,
    source: EventSource,
    *,
    rate: int,
    seconds: float,
    on_probe: Callable[[OrderRecord, float], None],
) -> dict[str, float]:
    """Send at `rate` events/s for `seconds`, catching up when late; what was achieved.

    producer: a started aiokafka producer.
    source: the events.
    rate: events per second wanted.
    seconds: how long.
    on_probe: told about each probe and its send time, just before it is sent.
    """
    started = time.monotonic()
    sent = 0
    total = int(rate * seconds)
    pending: list[asyncio.Future[Any]] = []
    while sent < total:
        due = min(total, int((time.monotonic() - started) * rate) + 1)
        while sent < due:
            record, probe = source.next()
            if probe:
                on_probe(record, time.monotonic())
            pending.append(
                await producer.send(
                    record.topic, record.value, key=record.key, headers=record.headers
                )
            )
            sent += 1
        if len(pending) > 10_000:
            await asyncio.gather(*pending)
            pending.clear()
        await asyncio.sleep(PACE_S)  # pacing, not synchronisation
    await asyncio.gather(*pending)
    elapsed = time.monotonic() - started
    return {"sent": sent, "seconds": round(elapsed, 3), "achieved_per_s": round(sent / elapsed, 1)}


class BareRead:
    """A bare consumer's background read (`bare_reader`)."""

    def __init__(self, task: asyncio.Task[None], consumer: AIOKafkaConsumer) -> None:
        self._task = task
        self._consumer = consumer

    def check(self) -> None:
        """Raise what stopped the read, if it stopped."""
        if self._task.done():
            self._task.result()

    async def read_to_end(self, *, timeout_s: float) -> None:
        """Wait until the read has passed every partition's log end as of now.

        Raises TimeoutError when it has not after `timeout_s`, or what stopped the read.
        """
        partitions = list(self._consumer.assignment())
        ends = await self._consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while [tp for tp, end in ends.items() if await self._consumer.position(tp) < end]:
            self.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the bare reader did not reach the log end in {timeout_s} s")
            await asyncio.sleep(0.05)  # polling the reader's position, with a deadline


@contextlib.asynccontextmanager
async def bare_reader(
    kafka: KafkaConnection,
    topic: str,
    wanted: Collection[bytes] | None,
    arrivals: dict[bytes, float],
    *,
    then: Callable[[list[Any]], Awaitable[None]] | None = None,
) -> AsyncIterator[BareRead]:
    """A bare aiokafka consumer assigned at the log end of `topic`'s partitions, reading in the
    background while the block runs: the first arrival (time.monotonic(), after `json.loads` of
    every value, as any consumer decodes) of each key in `wanted` goes into `arrivals`.

    wanted: the keys to stamp (may grow while it reads: the probes sent so far); None: every
        record's key.
    then: awaited with each fetched batch's decoded values after they are stamped, before the
        next fetch (a bare purge: `bench.bare_purge`).
    """
    ends = await end_offsets(kafka, [topic])
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **kafka.client_kwargs())
    await consumer.start()
    consumer.assign(list(ends))
    for partition, end in ends.items():
        consumer.seek(partition, end)
    stop = asyncio.Event()

    async def consume() -> None:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            now = time.monotonic()
            decoded = []
            for records in batch.values():
                for record in records:
                    decoded.append(json.loads(record.value))
                    key = record.key
                    if (
                        key is not None
                        and key not in arrivals
                        and (wanted is None or key in wanted)
                    ):
                        arrivals[key] = now
            if then is not None and decoded:
                await then(decoded)

    consuming = asyncio.create_task(consume())
    try:
        yield BareRead(consuming, consumer)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await consuming
        await consumer.stop()


async def bare_phase(
    kafka: KafkaConnection,
    run_id: str,
    rate: int,
    *,
    seconds: float,
    settle_timeout_s: float,
    consume_from: KafkaConnection | None = None,
    consume_topic: str = topics.ORDERS,
) -> dict[str, Any]:
    """Paced sends to the orders topic of `kafka`, each probe stamped when a bare consumer
    (assigned at the log end) reads it; the probes' latencies and the rate achieved.

    kafka: where the producer sends.
    run_id: unique to the run (ids).
    rate: events per second.
    seconds: how long to send.
    settle_timeout_s: how long probes may take to arrive after the last send.
    consume_from: where the consumer reads (default `kafka`; another cluster that mirrors it).
    consume_topic: the topic it reads there (default the orders topic).
    """
    probes: dict[bytes, Probe] = {}
    arrivals: dict[bytes, float] = {}

    def on_probe(record: OrderRecord, sent_at: float) -> None:
        probes[record.key] = Probe(sent_at)

    async with bare_reader(consume_from or kafka, consume_topic, probes.keys(), arrivals) as read:
        producer = bare_producer(kafka)
        await producer.start()
        try:
            source = EventSource(f"{run_id}-b{rate}", probe_every=_probe_every(rate))
            sending = await send_paced(
                producer, source, rate=rate, seconds=seconds, on_probe=on_probe
            )
            deadline = time.monotonic() + settle_timeout_s
            while len(arrivals) < len(probes) and time.monotonic() < deadline:
                read.check()
                await asyncio.sleep(0.05)  # polling the reader's progress, with a deadline
        finally:
            await producer.stop()
    for key, arrived in arrivals.items():
        probes[key].seen_at = arrived
    return _summary(probes, sending)


async def system_phase(
    settings: InvalidatorSettings,
    *,
    run_id: str,
    rate: int,
    params: LatencyParams,
    processes: list[BenchProcess],
    produce_to: KafkaConnection | None = None,
    probes: dict[bytes, Probe] | None = None,
) -> dict[str, Any]:
    """Paced sends while the invalidators run, each probe stamped when its generation key was
    written in every region of `settings`; the probes' latencies and the rate achieved.

    settings: the regions' Redis targets (and the cluster sent to, unless `produce_to`).
    run_id: unique to the run (ids).
    rate: events per second.
    params: how long to send and to wait for the probes.
    processes: the invalidators (checked alive, RSS sampled).
    produce_to: the cluster to send to (default `settings.kafka`).
    probes: filled with every probe (its landing in each region too), for the caller's figures.
    """
    probes = {} if probes is None else probes
    watching: list[asyncio.Task[None]] = []
    source_id = probe_source_id(run_id, rate)
    watch = KeyspaceWatch(
        {region: settings.targets(region)[0] for region in settings.regions},
        key_pattern="{company:" + source_id + "-p*",
    )

    async def watch_probe(record: OrderRecord, probe: Probe) -> None:
        key = generation_key(COMPANY_ORDERS.bind(company_id=record.company_id))
        probe.seen_at = await watch.landed(key, timeout_s=params.seconds + params.settle_timeout_s)
        probe.seen_in = watch.landings(key)

    def on_probe(record: OrderRecord, sent_at: float) -> None:
        probe = probes[record.key] = Probe(sent_at)
        watching.append(asyncio.create_task(watch_probe(record, probe)))

    await watch.start()
    producer = bare_producer(produce_to or settings.kafka)
    await producer.start()
    try:
        source = EventSource(source_id, probe_every=_probe_every(rate))
        sending = await send_paced(
            producer, source, rate=rate, seconds=params.seconds, on_probe=on_probe
        )
        pending = set(watching)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=1.0)
            for process in processes:
                process.check_running()
                process.sample_rss()
    finally:
        for task in watching:
            task.cancel()
        await asyncio.gather(*watching, return_exceptions=True)
        await producer.stop()
        await watch.stop()
    return _summary(probes, sending)


def probe_source_id(run_id: str, rate: int) -> str:
    """What prefixes the ids of `system_phase`'s events at `rate` (its probes' ids too)."""
    return f"{run_id}-s{rate}"


def _probe_every(rate: int) -> int:
    return max(1, rate // PROBES_PER_S)


def _summary(probes: dict[bytes, Probe], sending: dict[str, float]) -> dict[str, Any]:
    seen = [p.seen_at - p.sent_at for p in probes.values() if p.seen_at is not None]
    return {
        **sending,
        "probes": len(probes),
        "late": len(probes) - len(seen),
        "ms": percentiles_ms(seen),
    }


def region_latencies(probes: dict[bytes, Probe], region: str) -> dict[str, Any]:
    """The probes' latencies to their landing in `region`, and how many never landed there."""
    seen = [p.seen_in[region] - p.sent_at for p in probes.values() if region in p.seen_in]
    return {"probes": len(probes), "late": len(probes) - len(seen), "ms": percentiles_ms(seen)}


async def run_latency(
    settings: InvalidatorSettings, params: LatencyParams, *, run_id: str, log_dir: Path
) -> dict[str, Any]:
    """Measure both phases at every rate; the results per rate.

    settings: the endpoints.
    params: rates and durations.
    run_id: unique to the run.
    log_dir: where the invalidators' logs go.
    """
    results: dict[str, Any] = {}
    for rate in params.rates:
        print(f"[latency] bare aiokafka at {rate:,}/s for {params.seconds:.0f} s", flush=True)
        results[str(rate)] = {
            "bare": await bare_phase(
                settings.kafka,
                run_id,
                rate,
                seconds=params.seconds,
                settle_timeout_s=params.settle_timeout_s,
            )
        }
        print(f"  {results[str(rate)]['bare']}", flush=True)
    settings, processes = await region_invalidators(
        settings, prefix=f"{run_id}-lat", log_dir=log_dir
    )
    async with running(processes):
        for region in sorted(settings.regions):
            await wait_stable(settings.kafka, settings.group_id(region), processes, members=1)
        for rate in params.rates:
            print(f"[latency] this system at {rate:,}/s for {params.seconds:.0f} s", flush=True)
            system = await system_phase(
                settings,
                run_id=run_id,
                rate=rate,
                params=params,
                processes=processes,
            )
            results[str(rate)]["this_system"] = system
            print(f"  {system}", flush=True)
        rss = {p.name: p.sample_rss() for p in processes}
    for figures in results.values():
        bare, system = figures["bare"]["ms"], figures["this_system"]["ms"]
        figures["ratios"] = {
            q: round(system[q] / bare[q], 2) if bare[q] else None for q in ("p50", "p99", "p999")
        }
    results["peak_rss_mb"] = rss
    return results
