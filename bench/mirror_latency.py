"""`python -m bench.mirror_latency`: how long MirrorMaker 2 of the local stack's mirrored topology
takes from eu's `orders.events` to us's `eu.orders.events`, through the link at given delays.

Starts the mirrored stack (`stack.sh up --mirrored`) unless it runs. For each delay: sets the
link's delay (no jitter), produces `--rate` records a second for `--seconds` (aiokafka,
`linger_ms=0`, `acks=all`) with the send time in the value, reads them on us with a bare
consumer; latency = receive wall clock - send wall clock, one process. Prints p50/p99/max per
delay and restores the link's delay afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.link import Link
from bench.stack import start_mirrored_stack
from invalidator.operators._offsets import partitions_of

SOURCE_TOPIC = "orders.events"


async def measure(source: str, target: str, rate: int, seconds: float) -> list[float]:
    """Latencies in ms of `rate * seconds` records mirrored from `source` to `target`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=target, enable_auto_commit=False)
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=source, acks="all", linger_ms=0)
    await producer.start()
    latencies: list[float] = []
    total = int(rate * seconds)
    run = f"{time.time_ns()}"
    try:
        partitions = await partitions_of(consumer, [f"eu.{SOURCE_TOPIC}"])
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:
            await consumer.position(tp)

        async def produce() -> None:
            start = time.monotonic()
            for i in range(total):
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                value = json.dumps({"run": run, "i": i, "sent": time.time()}).encode()
                await producer.send(SOURCE_TOPIC, value, key=str(i).encode())

        producing = asyncio.create_task(produce())
        deadline = time.monotonic() + seconds + 60
        while len(latencies) < total and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            now = time.time()
            for records in batch.values():
                for record in records:
                    fields = json.loads(record.value)
                    if fields.get("run") == run:
                        latencies.append((now - fields["sent"]) * 1000)
        await producing
    finally:
        await producer.stop()
        await consumer.stop()
    if len(latencies) < total:
        raise SystemExit(f"only {len(latencies)} of {total} records arrived")
    return latencies


async def main_async(delays: list[float], rate: int, seconds: float) -> None:
    """Measure at every delay; restore the link's delay."""
    endpoints = start_mirrored_stack()
    link = Link.from_env(endpoints["MIRROR_LINK_CONTROL"])
    before = await link.status()
    try:
        for delay in delays:
            await link.set_delay(delay)
            ms = sorted(
                await measure(
                    endpoints["MIRROR_KAFKA_EU"], endpoints["MIRROR_KAFKA_US"], rate, seconds
                )
            )
            p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
            print(
                f"link {delay:g} ms one way: {len(ms)} records, p50 {statistics.median(ms):.1f} ms,"
                f" p99 {p99:.1f} ms, max {ms[-1]:.1f} ms",
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
    args = parser.parse_args()
    asyncio.run(main_async(args.delays, args.rate, args.seconds))


if __name__ == "__main__":
    main()
