"""The soak figure: both invalidators' RSS over a long steady load (full bench only)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.latency import EventSource, send_paced
from bench.orders_load import OrderRecord, bare_producer
from bench.processes import current_rss_mb, region_invalidators, running
from invalidator.settings import InvalidatorSettings


@dataclass(frozen=True)
class SoakParams:
    """What the soak runs."""

    seconds: float = 600.0
    rate: int = 2_000
    sample_every_s: float = 5.0


async def run_soak(
    settings: InvalidatorSettings, params: SoakParams, *, run_id: str, log_dir: Path
) -> dict[str, Any]:
    """Load both regions' invalidators at `rate` for `seconds`, sampling their RSS.

    settings: the endpoints.
    params: duration, rate, sampling.
    run_id: unique to the run.
    log_dir: where the invalidators' logs go.
    """
    prefix = f"{run_id}-soak"
    settings, processes = await region_invalidators(settings, prefix=prefix, log_dir=log_dir)
    samples: dict[str, list[tuple[float, float]]] = {p.name: [] for p in processes}
    print(f"[soak] {params.rate:,}/s for {params.seconds:.0f} s", flush=True)

    def ignore_probe(record: OrderRecord, sent_at: float) -> None:
        return None

    async with running(processes):
        started = time.monotonic()
        producer = bare_producer(settings.kafka)
        await producer.start()
        try:
            sending = asyncio.create_task(
                send_paced(
                    producer, EventSource(prefix, probe_every=10**9), rate=params.rate,
                    seconds=params.seconds, on_probe=ignore_probe,
                )
            )  # fmt: skip
            while not sending.done():
                for process in processes:
                    process.check_running()
                    rss = current_rss_mb(process.pid)
                    if rss is not None:
                        samples[process.name].append((round(time.monotonic() - started, 1), rss))
                await asyncio.wait({sending}, timeout=params.sample_every_s)
            sent = sending.result()
        finally:
            await producer.stop()
        peaks = {p.name: p.sample_rss() for p in processes}
    growth = {name: rss_growth_mb(points) for name, points in samples.items()}
    return {"sent": sent, "peak_rss_mb": peaks, "rss_growth_mb": growth, "samples": samples}


def rss_growth_mb(points: list[tuple[float, float]]) -> float | None:
    """How much higher RSS went in the second half of the run than in the first (MB).

    A leak keeps raising the high-water mark; the warm-up (allocator arenas growing to the
    largest batch seen) raises it early and then stays: the first half absorbs it.
    points: (seconds, RSS MB) samples in time order; None when there are too few.
    """
    if len(points) < 10:
        return None
    half = len(points) // 2
    return round(max(v for _, v in points[half:]) - max(v for _, v in points[:half]), 1)
