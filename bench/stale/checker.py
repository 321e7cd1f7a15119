"""The stale-read checker and the purge-latency summary: pure functions over what a phase recorded.

A read that started at t0 is stale when the version it returned is older than the newest write
of its item whose commit was acknowledged before t0 - window. Its staleness is t0 minus the
acknowledgement of the oldest write newer than the version it returned.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from bench.stale.workload import PurgeLanding, Read, Write
from contracts.percentiles import percentile


@dataclass
class RegionStaleness:
    """One region's reads under one variant."""

    reads: int = 0
    hits: int = 0
    stale_reads: int = 0
    """Older than a write acknowledged more than the window before the read started."""
    behind_latest_write: int = 0
    """Older than a write acknowledged before the read started (window 0): includes the reads
    that raced a purge still in flight, which no system can avoid."""
    staleness_ms: list[float] = field(default_factory=list)
    stale_values: set[tuple[str, int]] = field(default_factory=set)
    """The distinct (item, version) the stale reads returned: how many stale entries there were."""
    examples: list[str] = field(default_factory=list)


def acknowledged(writes: Iterable[Write]) -> dict[str, list[float]]:
    """Per item, the acknowledgement time of version 1, 2, ... (index = version - 1)."""
    by_item: dict[str, list[Write]] = defaultdict(list)
    for write in writes:
        by_item[write.item].append(write)
    acks = {}
    for item, item_writes in by_item.items():
        item_writes.sort(key=lambda w: w.version)
        if [w.version for w in item_writes] != list(range(1, len(item_writes) + 1)):
            raise ValueError(f"the writes of {item} are not versions 1..{len(item_writes)}")
        acks[item] = [w.acked_at for w in item_writes]
        if acks[item] != sorted(acks[item]):
            raise ValueError(f"the writes of {item} were acknowledged out of version order")
    return acks


def check_reads(
    reads: Iterable[Read], writes: Iterable[Write], *, window_s: float, examples: int = 5
) -> dict[str, RegionStaleness]:
    """Classify every read; per region.

    reads, writes: what the phase recorded (one clock).
    window_s: the allowed window: purges may take this long to land.
    examples: how many stale reads per region to describe in words.
    """
    acks = acknowledged(writes)
    regions: dict[str, RegionStaleness] = defaultdict(RegionStaleness)
    for read in reads:
        item_acks = acks.get(read.item, [])
        if read.version > len(item_acks):
            raise ValueError(f"{read.item} read at version {read.version}, never written")
        outcome = regions[read.region]
        outcome.reads += 1
        outcome.hits += read.hit
        if read.version < bisect.bisect_left(item_acks, read.started_at):
            outcome.behind_latest_write += 1
        required = bisect.bisect_left(item_acks, read.started_at - window_s)
        if read.version < required:
            outcome.stale_reads += 1
            # item_acks[v] is the acknowledgement of version v + 1: the oldest newer write.
            staleness = read.started_at - item_acks[read.version]
            outcome.staleness_ms.append(staleness * 1000)
            outcome.stale_values.add((read.item, read.version))
            if len(outcome.examples) < examples:
                outcome.examples.append(
                    f"{read.item}: got v{read.version} ({'hit' if read.hit else 'miss'}) "
                    f"{staleness * 1000:.1f} ms after v{read.version + 1} was committed; "
                    f"v{required} was committed more than the window before the read"
                )
    return dict(regions)


def consistency_nines(reads: int, stale_reads: int) -> float | str:
    """-log10(stale/reads), or "inf" when no read was stale."""
    if stale_reads == 0:
        return "inf"
    return round(-math.log10(stale_reads / reads), 2)


def distribution_ms(samples: list[float], *, with_p999: bool = False) -> dict[str, float]:
    """p50, p99 (p99.9 when asked) and max of millisecond samples, nearest rank."""
    summary = {"p50": percentile(samples, 0.5), "p99": percentile(samples, 0.99)}
    if with_p999:
        summary["p99.9"] = percentile(samples, 0.999)
    summary["max"] = max(samples, default=0.0)
    return {name: round(value, 2) for name, value in summary.items()}


@dataclass
class PurgeLatency:
    """Commit acknowledged -> purge seen, per region and in every region (the slowest one)."""

    per_region_ms: dict[str, list[float]]
    everywhere_ms: list[float]
    unconfirmed: int

    @property
    def window_s(self) -> float:
        """The allowed window: the slowest purge measured (commit -> purged everywhere)."""
        return max(self.everywhere_ms, default=0.0) / 1000

    @property
    def p999_s(self) -> float:
        """The p99.9 of the same latency: a tighter window, reported for comparison only."""
        return percentile(self.everywhere_ms, 0.999) / 1000


def purge_latency(landings: Iterable[PurgeLanding], regions: list[str]) -> PurgeLatency:
    """Latencies of the writes whose purge was seen in every region; the others are counted."""
    per_region: dict[str, list[float]] = {region: [] for region in regions}
    everywhere = []
    unconfirmed = 0
    for landing in landings:
        if landing.landed is None:
            unconfirmed += 1
            continue
        latencies = {r: (landing.landed[r] - landing.acked_at) * 1000 for r in regions}
        for region, latency in latencies.items():
            per_region[region].append(latency)
        everywhere.append(max(latencies.values()))
    return PurgeLatency(per_region, everywhere, unconfirmed)
