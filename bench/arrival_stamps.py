"""`python -m bench.arrival_stamps`: a bare consumer in a process of its own that writes when
each key first arrived, for a figure that pairs it with what another process did to the same
records (the cross-region figure: read from the mirrored topic -> purged).

The reader is `bench.latency.bare_reader` (assigned at the log end of every partition of the
topic, `json.loads` of every value, as any consumer decodes). The first line, `# ready`, says it
is positioned; it runs until SIGTERM or SIGINT, then writes one line per key at its first
arrival, `<key as hex> <time.monotonic()>` (CLOCK_MONOTONIC: comparable with the other
processes of this machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from bench.latency import bare_reader
from contracts import KafkaConnection

READY = "# ready"


async def stamp(kafka: KafkaConnection, topic: str, output: Path) -> None:
    """Read `topic` from its log end until SIGTERM or SIGINT, then write the stamps to
    `output` (whose first line, written once the reader is positioned, is READY)."""
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    arrivals: dict[bytes, float] = {}
    async with bare_reader(kafka, topic, None, arrivals) as read:
        with output.open("w") as lines:
            print(READY, file=lines)
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=1.0)
            read.check()
    with output.open("a") as lines:
        lines.writelines(f"{key.hex()} {at:.6f}\n" for key, at in arrivals.items())


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
