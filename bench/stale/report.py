"""The results of a run: the JSON document, the verdict, and the table printed and documented."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stale.checker import (
    PurgeLatency,
    RegionStaleness,
    consistency_nines,
    distribution_ms,
)
from bench.stale.workload import PhaseLog

THIS_SYSTEM = "this-system"


@dataclass
class VariantOutcome:
    """One variant's phase, checked."""

    name: str
    log: PhaseLog
    regions: dict[str, RegionStaleness]
    tighter: dict[str, RegionStaleness]
    """The same reads checked against the tighter p99.9 window (for comparison only)."""
    purges: PurgeLatency | None
    """None for a variant that publishes nothing."""
    details: dict[str, Any]


def variant_document(outcome: VariantOutcome) -> dict[str, Any]:
    """The JSON of one variant."""
    reads = len(outcome.log.reads)
    hits = sum(region.hits for region in outcome.regions.values())
    document: dict[str, Any] = {
        "reads": reads,
        "writes": len(outcome.log.writes),
        "seconds": round(outcome.log.elapsed_s, 2),
        "reads_per_s": round(reads / max(outcome.log.elapsed_s, 1e-9), 1),
        "writes_per_s": round(len(outcome.log.writes) / max(outcome.log.elapsed_s, 1e-9), 1),
        "hit_ratio": round(hits / max(reads, 1), 4),
        "regions": {
            name: {
                "reads": region.reads,
                "stale_reads": region.stale_reads,
                "stale_values": len(region.stale_values),
                "consistency_nines": consistency_nines(region.reads, region.stale_reads),
                "staleness_ms": (
                    distribution_ms(region.staleness_ms) if region.staleness_ms else None
                ),
                "hit_ratio": round(region.hits / max(region.reads, 1), 4),
                "behind_latest_write": region.behind_latest_write,
                "stale_reads_at_p999_window": outcome.tighter[name].stale_reads,
                "stale_examples": region.examples,
            }
            for name, region in sorted(outcome.regions.items())
        },
        "purge_latency_ms": None,
        "harness_gc_pauses": outcome.log.gc_pauses,
    }
    if outcome.purges is not None:
        document["purge_latency_ms"] = {
            "everywhere": distribution_ms(outcome.purges.everywhere_ms, with_p999=True),
            **{
                region: distribution_ms(samples, with_p999=True)
                for region, samples in sorted(outcome.purges.per_region_ms.items())
            },
            "measured": len(outcome.purges.everywhere_ms),
            "unconfirmed": outcome.purges.unconfirmed,
        }
    document.update(outcome.details)
    return document


def failures(outcomes: list[VariantOutcome], *, reads_wanted: int) -> list[str]:
    """Why the run fails: a stale read of this system beyond the window, a purge never seen,
    a baseline without stale reads in some region (the races were not exercised), or this
    system refusing no fill (its conditional fill was never tested: reads check generations
    too, so without a refused fill a fill that ignores the generation would go unseen)."""
    found = []
    for outcome in outcomes:
        if len(outcome.log.reads) != reads_wanted or not outcome.log.writes:
            found.append(f"{outcome.name}: {len(outcome.log.reads)} reads, no writes or too few")
        if outcome.name == THIS_SYSTEM and not outcome.details.get("fills_refused"):
            found.append(
                f"{outcome.name}: 0 fills refused, so no fill raced a purge or the conditional "
                "fill stored it anyway"
            )
        for region, staleness in sorted(outcome.regions.items()):
            if outcome.name == THIS_SYSTEM and staleness.stale_reads:
                found.append(
                    f"{outcome.name} {region}: {staleness.stale_reads} stale reads beyond the "
                    "window"
                )
            if outcome.name != THIS_SYSTEM and not staleness.stale_reads:
                found.append(
                    f"{outcome.name} {region}: no stale read, so the races were not exercised"
                )
        if outcome.purges is not None and outcome.purges.unconfirmed:
            found.append(f"{outcome.name}: {outcome.purges.unconfirmed} purges never seen")
    return found


_COLUMNS = (
    ("variant", "<", 15),
    ("region", "<", 6),
    ("reads", ">", 7),
    ("stale", ">", 6),
    ("stale values", ">", 12),
    ("nines", ">", 5),
    ("staleness p50/p99/max ms", "<", 24),
    ("hit", ">", 5),
    ("purge p50/p99 ms", "<", 16),
    ("stale at p99.9 window", ">", 21),
)


def _rows(document: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for name, variant in document["variants"].items():
        for region, numbers in variant["regions"].items():
            staleness = numbers["staleness_ms"]
            latency = (variant["purge_latency_ms"] or {}).get(region)
            rows.append(
                (
                    name,
                    region,
                    str(numbers["reads"]),
                    str(numbers["stale_reads"]),
                    str(numbers["stale_values"]),
                    str(numbers["consistency_nines"]),
                    f"{staleness['p50']:.0f} / {staleness['p99']:.0f} / {staleness['max']:.0f}"
                    if staleness
                    else "-",
                    f"{numbers['hit_ratio']:.3f}",
                    f"{latency['p50']:.1f} / {latency['p99']:.1f}" if latency else "-",
                    str(numbers["stale_reads_at_p999_window"]),
                )
            )
    return rows


def window_line(document: dict[str, Any]) -> str:
    """The window and how it was measured, in one sentence."""
    everywhere = document["variants"][THIS_SYSTEM]["purge_latency_ms"]["everywhere"]
    return (
        f"window {document['window_ms']:.1f} ms = the slowest of "
        f"{document['variants'][THIS_SYSTEM]['purge_latency_ms']['measured']} purges of "
        f"this system, commit acknowledged -> purged in every region "
        f"(p50 {everywhere['p50']:.1f} ms, p99 {everywhere['p99']:.1f} ms, "
        f"p99.9 {everywhere['p99.9']:.1f} ms)" + _topology_clause(document)
    )


def _topology_clause(document: dict[str, Any]) -> str:
    """On the mirrored topology: the link's delay and the slowest purge in each region."""
    link = document.get("link")
    if not link:
        return ""
    purges = document["variants"][THIS_SYSTEM]["purge_latency_ms"]
    slowest = ", ".join(
        f"{region} {purges[region]['max']:.1f} ms" for region in link_regions(purges)
    )
    by_home = document["variants"][THIS_SYSTEM].get("purge_latency_ms_by_home", {})
    local_remote = "".join(
        f"; {region} purges {home}'s writes p50 {by_home[home][region]['p50']:.1f} ms, max "
        f"{by_home[home][region]['max']:.1f} ms"
        for home in sorted(by_home)
        for region in sorted(by_home[home])
    )
    return (
        f"; mirrored clusters, link {link['delay_ms']:g} ms one way; slowest per region: "
        f"{slowest}{local_remote}"
    )


def link_regions(purges: dict[str, Any]) -> list[str]:
    """The regions of a purge-latency document (its entries other than the totals)."""
    return sorted(k for k, v in purges.items() if k != "everywhere" and isinstance(v, dict))


def races_line(document: dict[str, Any]) -> str:
    """How often this system's conditional fill closed the race a slow reader opens."""
    this_system = document["variants"][THIS_SYSTEM]
    return (
        f"{THIS_SYSTEM}: {this_system['fills_refused']} fills refused because a purge landed "
        "between the reader's generation read and its fill"
    )


def text_table(document: dict[str, Any]) -> str:
    """The table printed at the end of a run."""
    lines = [
        "  ".join(f"{title:{align}{width}}" for title, align, width in _COLUMNS),
        *(
            "  ".join(
                f"{cell:{align}{width}}"
                for cell, (_, align, width) in zip(row, _COLUMNS, strict=True)
            )
            for row in _rows(document)
        ),
    ]
    return "\n".join(lines)


def markdown_table(document: dict[str, Any]) -> str:
    """The same table in markdown, for docs/stale.md."""
    lines = [
        "| " + " | ".join(title for title, _, _ in _COLUMNS) + " |",
        "|" + "|".join("---" if align == "<" else "---:" for _, align, _ in _COLUMNS) + "|",
        *("| " + " | ".join(row) + " |" for row in _rows(document)),
    ]
    return "\n".join(lines)


def main() -> int:
    """`python -m bench.stale.report RESULTS.json`: the markdown of a run, for docs/stale.md."""
    if len(sys.argv) != 2:
        print("usage: python -m bench.stale.report RESULTS.json", file=sys.stderr)
        return 2
    document = json.loads(Path(sys.argv[1]).read_text())
    print(window_line(document) + ".\n")
    print(races_line(document) + ".\n")
    print(markdown_table(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
