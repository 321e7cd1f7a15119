"""`python -m bench.report`: docs/performance.md, one chart per figure and the README table,
all generated from the result files of the last full run (bench/results/*.json)."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.goals import goal_rows, goal_table
from bench.machine import RESULTS_DIR

FIGURE_NAMES = (
    "drain",
    "scale_out",
    "latency",
    "purge_cost",
    "replica_ack",
    "publishing",
    "outbox",
    "outbox_e2e",
    "cross_region",
    "read_path",
    "watchdog",
    "tls",
    "soak",
)
DOC = Path("docs") / "performance.md"
CHARTS = Path("docs") / "performance"
README = Path("README.md")
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
NOTES_BEGIN, NOTES_END = "<!-- notes:begin -->", "<!-- notes:end -->"

ABOUT = {
    "drain": (
        "N orders events are produced once (Zipf(1.1) over 10k companies; uniform over 1M), "
        "after every group was committed at the log end; then each consumer drains exactly "
        "those records as a process: the bare aiokafka group (getmany of 2,000, `json.loads` "
        "of every value, commit per batch: the limit, run before and after the invalidators, "
        "the faster of the two counting), `invalidator run --region eu` and `us`, "
        "and the naive FastStream subscriber (one event at a time, `SCAN MATCH` + `DEL`) on a "
        "small set of its own. Drained = the group's committed offsets reached the log end "
        "(polled from outside); the rate is timed from the first commit seen to the last. "
        "Peak RSS is VmHWM. After the drain every event's generation keys must exist in "
        "both regions (no lost purge)."
    ),
    "scale_out": (
        "1, 2 and 3 `invalidator run --region eu` processes in one group (the orders topic has "
        "6 partitions) drain N Zipf events produced before they start (the producer is about as "
        "fast as one invalidator, so producing meanwhile would cap the figure). The timing "
        "starts at the first commit once every member is in the group (joins and rebalances "
        "stay out of it); ratio to one process. The machine's CPU busy fraction over the run "
        "is recorded: where one process already keeps both cores busy (with the broker and "
        "Redis), more processes cannot add throughput."
    ),
    "latency": (
        "The same paced producer (acks=all, idempotent) sends orders events at 1k and 20k/s; "
        "probes on new companies are stamped at send. Bare: an aiokafka consumer stamps their "
        "arrival. This system: both regions' invalidators as processes; a probe is purged when "
        "its generation key was written in every region, as Redis reports it (keyspace "
        "notifications from every master). The achieved "
        "send rate is recorded: on 2 cores the invalidators and the producer share the CPU."
    ),
    "purge_cost": (
        "Each region's Redis is filled in the real layout with 10k/100k/1M entries; "
        "`purge_namespaces` purges one namespace at a time by the generation, index (100 "
        "indexed entries) and scan strategies. Ratio to one raw `SET` round trip."
    ),
    "replica_ack": (
        "On the `us` Cluster (3 masters, one replica each), generation purges with and without "
        "`min_replicas_acked=1` (a WAIT on each master's connection that wrote), alternating "
        "round by round in one run: one namespace per purge, and batches of 2,000. Ratio: with "
        "WAIT to without, for the p50 latency and for namespaces purged per second."
    ),
    "publishing": (
        "`EventPublisher.publish` awaited one after the other, `publish_many` in batches of "
        "1,000, and a bare aiokafka producer (same settings, pre-serialised, send + gather)."
    ),
    "outbox": (
        "A service transaction (one order row inserted) with and without its event's outbox row "
        "(`add_event`), alternating round by round, on SQLite (a file) and on the stack's "
        "PostgreSQL: p50/p99 ms and the ratio. The relay, in rounds: N rows written, then "
        "`OutboxRelay.run` timed until it published them all (one flush per batch of 500), "
        "and in the same round a bare aiokafka producer (acks=all, idempotent) sending N "
        "pre-serialised records, one gather per 500; who goes first alternates round by round. "
        "The figures are the medians of the rounds' rates and of their ratios."
    ),
    "outbox_e2e": (
        "A write's transaction (from its start, connection in hand, so the commit included) -> "
        "its purge landed in every region, per database and write rate, with the same paced "
        "writers (up to 64 in flight, one order row per transaction, one write in N a probe on "
        "a new company, landed when its generation key was written in every region: keyspace "
        "notifications), the two paths in alternating rounds (who goes first alternates too; "
        "percentiles over every round's probes). `direct`: commit, then "
        "`EventPublisher.publish` (the limit: publishing right after the commit). `outbox`: the"
        " row and its event's outbox row in one transaction, an `OutboxRelay` publishing it: on"
        " SQLite in the writers' process on their engine (one connection, woken by the commit),"
        " on PostgreSQL in a process of its own (woken by the NOTIFY the writers' process sends"
        " after each commit). Both regions' invalidators run as processes. `relay` holds the "
        "relay's per-stage times: row written -> claimed (`wait`), the claim, send -> "
        "acknowledged (`publish`), the mark. `achieved_per_s` is the writers' rate; "
        "`writer_process_cpu_share` the writing process's CPU seconds per second. `debezium` "
        "(full runs): the outbox path with Debezium's connector on Kafka Connect as the relay, "
        "an outbox table of its own; `debezium_rate`, in 3 rounds: 25,000 rows written while the "
        "connector is paused, then, who goes first alternating, its drain timed from its resume "
        "until all are on the topic and a bare idempotent producer sending as many records; the "
        "figures are the medians of the rounds' rates and ratios."
    ),
    "cross_region": (
        "The mirrored topology (`stack.sh up --mirrored`: a Kafka cluster per region, "
        "MirrorMaker 2 per target region reading the other cluster through the link proxy). "
        "Events are published in eu at 200 and 1,000/s (the latency figure's paced producer, to "
        "eu's cluster); each region's invalidator reads its own cluster (us also "
        "`eu.orders.events`); a probe is purged in a region when its generation key was written "
        "there (keyspace notifications). Limits in the same run: the link (the proxy's one-way "
        "delay; ApiVersions round trips through it) and the bare mirror (a bare producer to eu, "
        "a bare consumer of `eu.orders.events` on us, assigned at the log end); eu's own bare "
        "produce -> consume beside it. Alongside the system, in the same phase: a bare consumer "
        "process reading `eu.orders.events` on us (`alongside`: per probe, read there -> purged "
        "there) and, at 200/s, a bare consumer process purging each event with plain redis-py, "
        "SET + WAIT per master (`bare_purge_added_ms`: read -> that purge landed)."
    ),
    "read_path": (
        "`CacheClient.fetch` on each region's Redis (eu standalone, us Cluster), 1 and 64 "
        "concurrent callers, each caller on a namespace of its own. Hit: a valid entry, against "
        "a bare redis-py `MGET` of the same two keys (generation and entry) and a bare `GET` of "
        "the entry (what a naive cache does). Miss: a new entry read, loaded (at once) and "
        "filled, against a bare `GET` + `SET` of a new key. The bare reads run on a client of "
        "their own from the same target. Every variant runs once per round, the order rotating; "
        "the figures are medians over the rounds, each ratio the median of the per-round ratios "
        "to the bare variant run beside it."
    ),
    "watchdog": (
        "The invalidator's drain (`invalidator run --region eu`, one process) with and without "
        "a consistency watchdog (`invalidator watch`, 1 in 10 events sampled by id, looking in "
        "eu's Redis) beside it, alternating drain by drain in one run (without, with; then "
        "with, without; ...). Every drain has a set of its own of the same size and shape "
        "(Zipf(1.1) draws over companies new to the run), produced after the drain's groups "
        "were committed at the log end; the drain is timed as in the drain figure. With the "
        "watchdog, it starts first (its own group, at the set's start) and the invalidator "
        "once it is ready: it reads the backlog ahead of the purges and looks for each sampled "
        "purge until it appears. Ratio: the median drain with to the median without. The "
        "watchdog's CPU per sampled event: its process's CPU time (/proc) from its readiness "
        "until every sampled event was judged, over the events sampled. Every purge of every "
        "set must be in Redis after its drain, and the watchdog must judge none missing."
    ),
    "tls": (
        "What TLS costs on the hot path: the plaintext stack against the secure profile "
        "(`stack.sh up --secure`: Kafka over SASL_SSL with SCRAM-SHA-512 and ACLs, both regions' "
        "Redis over TLS with ACL users, us a Cluster replicating over TLS), in one run. On the "
        "secure profile the invalidator logs in as `invalidator` to Kafka and Redis, the bare "
        "consumer as `invalidator` too, events are published as `publisher`; the bench's own "
        "look-ups in Redis log in as `admin`. Drain: in each round, for each transport (the "
        "order alternating round by round), a set of N Zipf events of its own is produced, then "
        "drained by the bare aiokafka group on that transport (the limit) and by each region's "
        "`invalidator run`, timed as in the drain figure; every purge must be in Redis after. "
        "`secure_to_plaintext`: the median of the rounds' ratios; `to_bare`: likewise, each "
        "transport's invalidator to its own bare consumer. E2E: both transports' invalidators "
        "(both regions) run throughout; in each round, for each transport (alternating), the "
        "latency figure's paced producer sends at 1,000/s; a probe is purged when its "
        "generation key was written in every region (keyspace notifications). Percentiles over "
        "every round's probes, per transport. `secure_profile_up_s`: `up --secure` before the "
        "run (not in any figure)."
    ),
    "soak": "Both invalidators under a steady 2k events/s for 10 minutes; RSS sampled.",
}


def load_documents(results_dir: Path) -> dict[str, dict[str, Any]]:
    """Every figure's result document found in `results_dir`, by figure name."""
    documents = {}
    for name in FIGURE_NAMES:
        path = results_dir / f"{name}.json"
        if path.exists():
            documents[name] = json.loads(path.read_text())
    return documents


def _chart(name: str, document: dict[str, Any], path: Path) -> bool:
    draw = _CHARTS.get(name)
    if draw is None:
        return False
    import matplotlib  # noqa: PLC0415  (an optional dependency: the bench group)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axes = plt.subplots(figsize=(7, 3.5))
    draw(axes, document["results"])
    axes.set_title(name.replace("_", " "))
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def _scale_out_chart(axes: Any, results: dict[str, Any]) -> None:
    """A line: events/s per number of processes."""
    counts = [c for c in sorted(results, key=lambda k: int(k) if k.isdigit() else 0) if c.isdigit()]
    axes.plot([int(c) for c in counts], [results[c]["events_per_s"] for c in counts], "o-")
    axes.set_xlabel("processes")
    axes.set_ylabel("events/s")


def _purge_cost_chart(axes: Any, results: dict[str, Any]) -> None:
    """Lines: ms per purge (p50) per keyspace size, region and strategy."""
    for region, sizes in results.items():
        if not isinstance(sizes, dict):
            continue
        keys = sorted(sizes, key=int)
        for strategy in ("generation", "index", "scan"):
            axes.plot(
                [int(k) for k in keys],
                [sizes[k][strategy]["p50_ms"] for k in keys],
                "o-",
                label=f"{region} {strategy}",
            )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("entries in Redis")
    axes.set_ylabel("ms per purge (p50)")
    axes.legend(fontsize=7)


def _publishing_chart(axes: Any, results: dict[str, Any]) -> None:
    """Bars: events/s of each way to publish."""
    names = [n for n in ("publish", "publish_many", "bare") if n in results]
    axes.bar(names, [results[n]["events_per_s"] for n in names])
    axes.set_ylabel("events/s")


def _latency_chart(axes: Any, results: dict[str, Any]) -> None:
    """Lines: p50 and p99 ms per rate, bare and this system."""
    rates = [r for r in results if r.isdigit()]
    for variant in ("bare", "this_system"):
        for quantile in ("p50", "p99"):
            axes.plot(
                [f"{int(r):,}/s" for r in rates],
                [results[r][variant]["ms"][quantile] for r in rates],
                "o-",
                label=f"{variant} {quantile}",
            )
    axes.set_yscale("log")
    axes.set_ylabel("ms")
    axes.legend(fontsize=7)


def _drain_chart(axes: Any, results: dict[str, Any]) -> None:
    """Bars: events/s per workload and consumer."""
    labels, values = [], []
    for workload in ("zipf", "uniform"):
        for variant, figures in results.get(workload, {}).get("drains", {}).items():
            labels.append(f"{workload}\n{variant}")
            values.append(figures["events_per_s"])
    axes.bar(labels, values)
    axes.set_ylabel("events/s")
    axes.tick_params(axis="x", labelsize=7)


def _replica_ack_chart(axes: Any, results: dict[str, Any]) -> None:
    """Bars: p50 ms per purge without and with WAIT, one namespace and a batch."""
    kinds = ["single", "batch"]
    for offset, variant in ((-0.2, "without"), (0.2, "with_wait")):
        axes.bar(
            [k + offset for k in range(len(kinds))],
            [results[kind][variant]["p50_ms"] for kind in kinds],
            width=0.4,
            label=variant,
        )
    axes.set_xticks(range(len(kinds)), kinds)
    axes.set_ylabel("ms per purge (p50)")
    axes.legend(fontsize=7)


def _cross_region_chart(axes: Any, results: dict[str, Any]) -> None:
    """Lines: p50 and p99 ms per rate of the bare limits and of the purge in each region."""
    rates = [r for r in results if r.isdigit()]
    variants = ["bare_home", "bare_mirror"] + [
        name for name in results[rates[0]] if name.startswith("purged_")
    ]
    for variant in variants:
        for quantile, style in (("p50", "o-"), ("p99", "x--")):
            axes.plot(
                [f"{int(r):,}/s" for r in rates],
                [results[r][variant]["ms"][quantile] for r in rates],
                style,
                label=f"{variant} {quantile}",
            )
    axes.axhline(2 * results["link"]["delay_ms"], color="grey", linewidth=0.8, label="link RTT")
    axes.set_yscale("log")
    axes.set_ylabel("ms")
    axes.legend(fontsize=6, ncol=2)


def _read_path_chart(axes: Any, results: dict[str, Any]) -> None:
    """Bars: calls/s of each variant, per region and number of callers, hits then misses."""
    cases = [
        (region, kind, callers)
        for kind in ("hit", "miss")
        for region in ("eu", "us")
        for callers in results.get(region, {}).get(kind, {})
    ]
    colours = {"fetch": "C0", "mget": "C1", "get": "C2", "get_set": "C3"}
    width, labelled = 0.25, set()
    for index, (region, kind, callers) in enumerate(cases):
        figures = results[region][kind][callers]
        variants = [name for name in colours if name in figures]
        for slot, variant in enumerate(variants):
            axes.bar(
                index + (slot - (len(variants) - 1) / 2) * width,
                figures[variant]["calls_per_s"],
                width=width,
                color=colours[variant],
                label=None if variant in labelled else variant,
            )
            labelled.add(variant)
    axes.set_xticks(
        range(len(cases)), [f"{kind} {region}\nx{callers}" for region, kind, callers in cases]
    )
    axes.tick_params(axis="x", labelsize=7)
    axes.set_ylabel("calls/s")
    axes.legend(fontsize=7)


def _outbox_chart(axes: Any, results: dict[str, Any]) -> None:
    """Bars: events/s of the relay on each database and of the bare producer in its rounds."""
    names = [n for n in ("sqlite", "postgresql") if n in results]
    axes.bar(
        [f"{what} {n}" for n in names for what in ("relay", "bare")],
        [
            results[n]["relay"][figure]
            for n in names
            for figure in ("events_per_s", "bare_events_per_s")
        ],
    )
    axes.set_ylabel("events/s")


def _soak_chart(axes: Any, results: dict[str, Any]) -> None:
    """Lines: each process's RSS over the soak."""
    for process, points in results.get("samples", {}).items():
        axes.plot([p[0] for p in points], [p[1] for p in points], label=process)
    axes.set_xlabel("s")
    axes.set_ylabel("RSS MB")
    axes.legend(fontsize=7)


def _watchdog_chart(axes: Any, results: dict[str, Any]) -> None:
    """Points: each drain's events/s without and with the watchdog; a bar at each median."""
    rates = results["drain_events_per_s"]
    for position, variant in enumerate(("without", "with")):
        axes.bar(position, rates[variant]["median"], width=0.5, alpha=0.4)
        runs = rates[variant]["runs"]
        axes.plot([position] * len(runs), runs, "o", color="C1")
    axes.set_xticks([0, 1], ["without watchdog", "with watchdog (1 in 10)"])
    axes.set_ylabel("events/s drained")


def _tls_chart(axes: Any, results: dict[str, Any]) -> None:
    """Bars: plaintext beside secure, each consumer's median drain (events/s, left axis) and the
    e2e p50 and p99 (ms, right axis)."""
    rates = results["drain"]["events_per_s"]
    consumers = list(rates["plaintext"])
    quantiles = ("p50", "p99")
    latency = axes.twinx()
    for offset, transport in ((-0.2, "plaintext"), (0.2, "secure")):
        colour = "C0" if transport == "plaintext" else "C1"
        axes.bar(
            [i + offset for i in range(len(consumers))],
            [rates[transport][c]["median"] for c in consumers],
            width=0.4,
            color=colour,
            label=transport,
        )
        latency.bar(
            [len(consumers) + i + offset for i in range(len(quantiles))],
            [results["e2e"][transport]["ms"][q] for q in quantiles],
            width=0.4,
            color=colour,
            hatch="//",
        )
    axes.set_xticks(
        range(len(consumers) + len(quantiles)),
        [f"drain\n{c}" for c in consumers] + [f"e2e {q}" for q in quantiles],
        fontsize=7,
    )
    axes.set_ylabel("events/s drained (median)")
    latency.set_ylabel("ms (hatched)")
    # On the twin axes: they are drawn over the drain's.
    latency.legend(*axes.get_legend_handles_labels(), fontsize=7, loc="upper left")


def _outbox_e2e_chart(axes: Any, results: dict[str, Any]) -> None:
    """Bars: commit -> purged p50 per database and rate, direct beside outbox."""
    labels, direct, outbox = [], [], []
    for database in ("sqlite", "postgresql"):
        for rate, figures in results.get(database, {}).items():
            if rate.isdigit():
                labels.append(f"{database}\n{int(rate):,}/s")
                direct.append(figures["direct"]["ms"]["p50"])
                outbox.append(figures["outbox"]["ms"]["p50"])
    positions = range(len(labels))
    axes.bar([p - 0.2 for p in positions], direct, width=0.4, label="direct")
    axes.bar([p + 0.2 for p in positions], outbox, width=0.4, label="outbox")
    axes.set_xticks(list(positions), labels, fontsize=7)
    axes.set_ylabel("commit -> purged p50, ms")
    axes.legend(fontsize=7)


_CHARTS: dict[str, Callable[[Any, dict[str, Any]], None]] = {
    "drain": _drain_chart,
    "scale_out": _scale_out_chart,
    "latency": _latency_chart,
    "purge_cost": _purge_cost_chart,
    "replica_ack": _replica_ack_chart,
    "publishing": _publishing_chart,
    "outbox": _outbox_chart,
    "outbox_e2e": _outbox_e2e_chart,
    "cross_region": _cross_region_chart,
    "read_path": _read_path_chart,
    "watchdog": _watchdog_chart,
    "tls": _tls_chart,
    "soak": _soak_chart,
}
"""Each figure's chart, drawn on the axes from its results."""


def _section(name: str, document: dict[str, Any]) -> str:
    machine, code = document["machine"], document["code"]
    lines = [
        f"## {name.replace('_', ' ')}",
        "",
        ABOUT.get(name, ""),
        "",
        f"![{name}](performance/{name}.png)",
        "",
        f"Measured {document['measured_at']} ({document['mode']} run) on {machine['cpus']} "
        f"CPUs ({machine['cpu_model']}), Python {machine['python']}, kernel "
        f"{machine['kernel']}, commit `{code['commit'][:12]}`"
        + (f" with uncommitted {', '.join(code['dirty'])}" if code["dirty"] else "")
        + ".",
        "",
        "<details><summary>parameters and results</summary>",
        "",
        "```json",
        json.dumps(
            {"parameters": document["parameters"], "results": _without_samples(document)},
            indent=1,
        ),
        "```",
        "",
        "</details>",
        "",
    ]
    return "\n".join(lines)


def _without_samples(document: dict[str, Any]) -> dict[str, Any]:
    results = dict(document["results"])
    if "samples" in results:
        results["samples"] = f"{sum(len(s) for s in results['samples'].values())} samples"
    return results


def replace_between_markers(text: str, table: str) -> str:
    """`text` with what lies between the bench markers replaced by `table`."""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"README.md has no {BEGIN} ... {END} markers")
    return pattern.sub(lambda _: f"{BEGIN}\n{table}\n{END}", text)


def hand_written_notes(document: str) -> str:
    """The notes written by hand in `document` (docs/performance.md), markers included; "" if none.

    They say where a goal is not met, how far and why; regenerating the report keeps them.
    """
    pattern = re.compile(re.escape(NOTES_BEGIN) + ".*?" + re.escape(NOTES_END), re.DOTALL)
    found = pattern.search(document)
    return found.group(0) if found else ""


def write_report(results_dir: Path) -> list[Path]:
    """Write docs/performance.md (keeping its hand-written notes), the charts and the README
    table; the paths written.

    results_dir: where the full run's result files are.
    """
    documents = load_documents(results_dir)
    table = goal_table(goal_rows(documents))
    notes = hand_written_notes(DOC.read_text()) if DOC.exists() else ""
    if notes:
        notes += "\n\n"
    written = []
    sections = []
    for name, document in documents.items():
        chart = CHARTS / f"{name}.png"
        if _chart(name, document, chart):
            written.append(chart)
        sections.append(_section(name, document))
    DOC.write_text(
        "# Performance\n\n"
        "Generated by `python -m bench.report` from `bench/results/*.json` (written by "
        "`make bench`); do not edit by hand, except the notes between the `notes` markers, "
        "which it keeps. Every figure is a ratio to a limit measured in "
        "the same run, on the same machine (shared, 2 cores: absolute numbers are noisy).\n\n"
        f"## Goals (issue 8)\n\n{table}\n\n{notes}" + "\n".join(sections)
    )
    written.append(DOC)
    README.write_text(replace_between_markers(README.read_text(), table))
    written.append(README)
    return written


def main() -> None:
    """Regenerate the report from the result files."""
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    for path in write_report(args.results_dir):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
