"""`python -m bench.arrival_stamps`: a bare consumer in a process of its own that writes when
each key first arrived, for a figure that pairs it with what another process did to the same
records (the cross-region figure: read from the mirrored topic -> purged).

The reader is `bench.latency.bare_reader` (assigned at the log end of every partition of the
topic, `json.loads` of every value, as any consumer decodes). The first line, `# ready`, says it
is positioned; it runs until SIGTERM or SIGINT, then writes one line per key at its first
arrival, `<key as hex> <time.monotonic()>` (CLOCK_MONOTONIC: comparable with the other
processes of this machine). When stopped it first reads on to the log end as of that moment, so
that every record produced before the stop is stamped.

With `--purge-cluster`, it also purges as a bare consumer would (`bench.bare_purge`): each
fetched batch is SET on that Redis Cluster, with WAIT, before the next fetch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import time
from pathlib import Path

from bench.bare_purge import BarePurger
from bench.latency import bare_reader
from contracts import KafkaConnection

READY = "# ready"
DRAIN_TIMEOUT_S = 60.0


async def stamp(
    kafka: KafkaConnection, topic: str, output: Path, *, purger: BarePurger | None = None
) -> None:
    """Read `topic` from its log end until SIGTERM or SIGINT, then on to the log end, then
    write the stamps to `output` (whose first line, written once the reader is positioned, is
    READY).

    purger: purges every fetched batch before the next fetch (None: only stamps).
    """
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    arrivals: dict[bytes, float] = {}
    if purger is not None:
        await purger.start()
    try:
        then = None if purger is None else purger.purge
        async with bare_reader(kafka, topic, None, arrivals, then=then) as read:
            with output.open("w") as lines:
                print(READY, file=lines)
            while not stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=1.0)
                read.check()
            started = time.monotonic()
            print(f"stopping: reading on to the log end ({len(arrivals)} keys so far)", flush=True)
            await read.read_to_end(timeout_s=DRAIN_TIMEOUT_S)
            print(
                f"at the log end after {time.monotonic() - started:.1f} s: {len(arrivals)} keys",
                flush=True,
            )
    finally:
        if purger is not None:
            await purger.stop()
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
    parser.add_argument("--purge-cluster", metavar="HOST:PORT", help="a Redis Cluster node")
    parser.add_argument("--replicas", type=int, default=0, help="WAIT for this many replicas")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    kafka = KafkaConnection(bootstrap_servers=args.bootstrap_servers)
    purger = None
    if args.purge_cluster:
        host, _, port = args.purge_cluster.rpartition(":")
        purger = BarePurger(host, int(port), replicas=args.replicas)
    asyncio.run(stamp(kafka, args.topic, args.output, purger=purger))


if __name__ == "__main__":
    main()
