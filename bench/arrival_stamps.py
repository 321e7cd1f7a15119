"""`python -m bench.arrival_stamps`: a bare consumer in a process of its own that writes when
each key first arrived, for a figure that pairs it with what another process did to the same
records (the cross-region figure: read from the mirrored topic -> purged).

Assigned at the log end of every partition of the topic; `json.loads` of every value, as any
consumer decodes; one line per key at its first arrival, `<key as hex> <time.monotonic()>`
(CLOCK_MONOTONIC: comparable with the other processes of this machine), flushed after every
fetch. The first line, `# ready`, says it is positioned. Runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from contracts import KafkaConnection
from invalidator.operators import end_offsets

READY = "# ready"


async def stamp(kafka: KafkaConnection, topic: str, output: Path) -> None:
    """Read `topic` from its log end until SIGTERM or SIGINT, stamping keys into `output`."""
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    ends = await end_offsets(kafka, [topic])
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **kafka.client_kwargs())
    await consumer.start()
    seen: set[bytes] = set()
    try:
        consumer.assign(list(ends))
        for partition, end in ends.items():
            consumer.seek(partition, end)
        with output.open("w") as lines:
            print(READY, file=lines, flush=True)
            while not stopping.is_set():
                batch = await consumer.getmany(timeout_ms=100)
                now = time.monotonic()
                for records in batch.values():
                    for record in records:
                        json.loads(record.value)
                        if record.key is not None and record.key not in seen:
                            seen.add(record.key)
                            print(f"{record.key.hex()} {now:.6f}", file=lines)
                lines.flush()
    finally:
        await consumer.stop()


def read_stamps(output: Path) -> dict[bytes, float]:
    """The stamps a run wrote: key -> first arrival (time.monotonic())."""
    stamps = {}
    for line in output.read_text().splitlines():
        if line and not line.startswith("#"):
            key, at = line.split()
            stamps[bytes.fromhex(key)] = float(at)
    return stamps


def is_ready(output: Path) -> bool:
    """Whether the reader is positioned at the log end (its first line is written)."""
    return output.exists() and output.read_text().startswith(READY)


def main() -> None:
    """Parse the options and stamp."""
    parser = argparse.ArgumentParser(prog="python -m bench.arrival_stamps", description=__doc__)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--output", required=True, type=Path)
    args = parser.parse_args()
    kafka = KafkaConnection(bootstrap_servers=args.bootstrap_servers)
    asyncio.run(stamp(kafka, args.topic, args.output))


if __name__ == "__main__":
    main()
