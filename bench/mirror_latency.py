"""`python -m bench.mirror_latency`: how long MirrorMaker 2 of the local stack's mirrored topology
takes from eu's `orders.events` to us's `eu.orders.events`, through the link at given delays.

Starts the mirrored stack (`stack.sh up --mirrored`) unless it runs (`--no-start`: the
endpoints come from the environment). For each delay: sets the
link's delay (no jitter), produces `--rate` records a second for `--seconds` (aiokafka,
`linger_ms=0`, `acks=all`) with the send time in the value, reads them on us with a bare
consumer (and on eu, for reference); latency = receive wall clock - send wall clock, one
process. Prints p50/p99/max per delay and restores the link's delay afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.link import Link
from bench.stack import start_mirrored_stack
from invalidator.operators._offsets import partitions_of

SOURCE_TOPIC = "orders.events"


async def _reader(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    """A started bare consumer at the log end of `topic`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    partitions = await partitions_of(consumer, [topic])
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for tp in partitions:
        await consumer.position(tp)
    return consumer


async def _read(
    consumer: AIOKafkaConsumer, run: str, total: int, latencies: list[float], within_s: float
) -> None:
    deadline = time.monotonic() + within_s
    while len(latencies) < total and time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=200)
        now = time.time()
        for records in batch.values():
            for record in records:
                fields = json.loads(record.value)
                if fields.get("run") == run:
                    latencies.append((now - fields["sent"]) * 1000)


async def measure(
    source: str, target: str, rate: int, seconds: float
) -> tuple[list[float], list[float]]:
    """Latencies in ms of `rate * seconds` records: (mirrored from `source` to `target`, read
    directly on `source` in the same run, for reference)."""
    total = int(rate * seconds)
    run = f"{time.time_ns()}"
    mirrored: list[float] = []
    direct: list[float] = []
    readers = [
        await _reader(target, f"eu.{SOURCE_TOPIC}"),
        await _reader(source, SOURCE_TOPIC),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=source, acks="all", linger_ms=0)
    await producer.start()
    try:

        async def produce() -> None:
            start = time.monotonic()
            for i in range(total):
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                value = json.dumps({"run": run, "i": i, "sent": time.time()}).encode()
                await producer.send(SOURCE_TOPIC, value, key=str(i).encode())

        await asyncio.gather(
            produce(),
            _read(readers[0], run, total, mirrored, seconds + 60),
            _read(readers[1], run, total, direct, seconds + 60),
        )
    finally:
        await producer.stop()
        for reader in readers:
            await reader.stop()
    if len(mirrored) < total:
        raise SystemExit(f"only {len(mirrored)} of {total} records arrived")
    return mirrored, direct


def _summary(ms: list[float]) -> str:
    ms = sorted(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms"


async def main_async(delays: list[float], rate: int, seconds: float, start: bool) -> None:
    """Measure at every delay; restore the link's delay."""
    endpoints = start_mirrored_stack() if start else dict(os.environ)
    link = Link.from_env(endpoints["MIRROR_LINK_CONTROL"])
    before = await link.status()
    try:
        for delay in delays:
            await link.set_delay(delay)
            mirrored, direct = await measure(
                endpoints["MIRROR_KAFKA_EU"], endpoints["MIRROR_KAFKA_US"], rate, seconds
            )
            print(
                f"link {delay:g} ms one way: {len(mirrored)} records, mirrored "
                f"{_summary(mirrored)}; direct {_summary(direct)}",
                flush=True,
            )
    finally:
        await link.set_delay(before.delay_ms, before.jitter_ms)


def main() -> None:
    """Parse the options and measure."""
    parser = argparse.ArgumentParser(prog="python -m bench.mirror_latency", description=__doc__)
    parser.add_argument("--delays", type=float, nargs="+", default=[0.0, 40.0])
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--no-start",
        action="store_true",
        help="take MIRROR_KAFKA_EU, MIRROR_KAFKA_US, MIRROR_LINK_CONTROL from the environment",
    )
    args = parser.parse_args()
    asyncio.run(main_async(args.delays, args.rate, args.seconds, not args.no_start))


if __name__ == "__main__":
    main()
