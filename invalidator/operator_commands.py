"""Operator commands: `offsets show`, `offsets rewind`, `replay`, `purge`.

Exit codes scripts can rely on: 0 done; 1 refused (active group members, declined
confirmation) or a purge failed on some target; 2 bad input or configuration; 3 a service
(Kafka, Redis) cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition

from contracts.catalogue import BoundNamespace, Catalogue, PurgeStrategy
from contracts.layout import index_key
from invalidator.offsets import (
    commit_group_offsets,
    committed_offsets,
    group_exists,
    group_lag,
    group_state,
    log_bounds,
    offsets_at,
    record_timestamps,
)
from invalidator.replay import plan_window, purge_planned
from invalidator.rewind import (
    OperatorInputError,
    RewindRow,
    parse_datetime,
    parse_duration,
    parse_partitions,
    parse_when,
    plan_rewind,
)
from invalidator.settings import InvalidatorSettings
from invalidator.targets import RegionTargets

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_INPUT = 2
EXIT_UNAVAILABLE = 3


def _catalogue_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--catalogue", help="package.module:attribute (overrides INVALIDATOR_CATALOGUE)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def add_operator_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `offsets`, `replay` and `purge`."""
    offsets = commands.add_parser("offsets", help="inspect and rewind a region's group offsets")
    actions = offsets.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="committed offset, log end, lag and time per partition")
    show.add_argument("--region", help="one region (default: every region)")
    _catalogue_option(show)
    rewind = actions.add_parser("rewind", help="move a region's group (dry run unless --execute)")
    rewind.add_argument("--region", required=True)
    target = rewind.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-datetime", metavar="TIME", help="ISO 8601 with a zone")
    target.add_argument("--by-duration", metavar="DURATION", help="back by e.g. PT15M or 15m")
    target.add_argument("--to-offset", type=int, metavar="N")
    target.add_argument(
        "--shift-by", type=int, metavar="K", help="negative rewinds, positive skips"
    )
    target.add_argument("--to-earliest", action="store_true")
    target.add_argument("--to-latest", action="store_true")
    rewind.add_argument("--topic", help="one topic of the catalogue (default: all)")
    rewind.add_argument("--partitions", help="e.g. 0,1,5 (default: all)")
    rewind.add_argument("--execute", action="store_true", help="apply the plan (default: dry run)")
    _catalogue_option(rewind)

    replay = commands.add_parser(
        "replay", help="purge what a window of events purged, group untouched"
    )
    replay.add_argument("--region", required=True)
    window = replay.add_mutually_exclusive_group(required=True)
    window.add_argument("--from", dest="start", metavar="WHEN", help="a time or a duration ago")
    window.add_argument("--from-offset", type=int, metavar="N")
    replay.add_argument(
        "--to", dest="end", metavar="WHEN", help="a time or a duration ago (default: now)"
    )
    replay.add_argument("--to-offset", type=int, metavar="N", help="stop before this offset")
    replay.add_argument("--topic", help="one topic of the catalogue (default: all)")
    replay.add_argument("--partitions", help="e.g. 0,1,5 (default: all)")
    replay.add_argument("--dry-run", action="store_true", help="print what would be purged")
    _catalogue_option(replay)

    purge = commands.add_parser("purge", help="purge one concrete namespace by hand")
    purge.add_argument("--region", required=True)
    purge.add_argument("namespace", help="a namespace of the catalogue, e.g. company_orders")
    purge.add_argument("params", nargs="*", metavar="PARAM=VALUE", help="e.g. company_id=42")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _catalogue_option(purge)


async def run_operator_command(args: argparse.Namespace, settings: InvalidatorSettings) -> int:
    """Run an operator command; returns the exit status."""
    catalogue = settings.load_catalogue()
    if args.command == "offsets" and args.action == "show":
        return await _offsets_show(args, settings, catalogue)
    region = args.region
    settings.targets(region)  # unknown region: SettingsError naming the known ones
    if args.command == "offsets":
        return await _offsets_rewind(args, settings, catalogue)
    if args.command == "replay":
        return await _replay(args, settings, catalogue)
    return await _purge(args, settings, catalogue)


def _topics(catalogue: Catalogue, topic: str | None) -> list[str]:
    if topic is None:
        return catalogue.topics()
    if topic not in catalogue.topics():
        raise OperatorInputError(
            f"--topic {topic!r} is not a topic of the catalogue; "
            f"known: {', '.join(catalogue.topics())}"
        )
    return [topic]


def _select(partitions: Sequence[TopicPartition], wanted: set[int] | None) -> list[TopicPartition]:
    if wanted is None:
        return list(partitions)
    chosen = [tp for tp in partitions if tp.partition in wanted]
    missing = wanted - {tp.partition for tp in chosen}
    if missing:
        raise OperatorInputError(f"--partitions: no partition {sorted(missing)} in these topics")
    return chosen


def _iso(ms: int | None) -> str | None:
    return (
        None
        if ms is None
        else datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [
        [str(h) for h in headers],
        *[["-" if c is None else str(c) for c in row] for row in rows],
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def _print(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if args.json else text)


async def _offsets_show(
    args: argparse.Namespace, settings: InvalidatorSettings, catalogue: Catalogue
) -> int:
    regions = [args.region] if args.region else sorted(settings.regions)
    for region in regions:
        settings.targets(region)
    report: dict[str, Any] = {"regions": []}
    text = []
    topics = catalogue.topics()
    for region in regions:
        group = settings.group_id(region)
        lag = await group_lag(settings.kafka, group, topics)
        state = await group_state(settings.kafka, group)
        stamps = await record_timestamps(
            settings.kafka, {tp: p.committed - 1 for tp, p in lag.items() if p.committed}
        )
        rows = [
            {
                "topic": tp.topic,
                "partition": tp.partition,
                "committed": p.committed,
                "log_end": p.end,
                "lag": p.lag,
                "committed_record_time": _iso(stamps.get(tp)),
            }
            for tp, p in sorted(lag.items())
        ]
        members = [f"{m.client_id}@{m.host}" for m in state.members]
        report["regions"].append(
            {
                "region": region,
                "group": group,
                "state": state.state,
                "members": members,
                "total_lag": sum(r["lag"] for r in rows),
                "partitions": rows,
            }
        )
        text.append(
            f"region {region}: group {group}, {state.state}, "
            f"{'members: ' + ', '.join(members) if members else 'no active member'}, "
            f"total lag {sum(r['lag'] for r in rows)}"
        )
        text.append(
            _table(
                ["TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "LAST PURGED RECORD AT"],
                [
                    [
                        r["topic"],
                        r["partition"],
                        r["committed"],
                        r["log_end"],
                        r["lag"],
                        r["committed_record_time"],
                    ]
                    for r in rows
                ],
            )
        )
    _print(args, report, "\n".join(text))
    return EXIT_OK


async def _desired_offsets(
    args: argparse.Namespace,
    settings: InvalidatorSettings,
    partitions: list[TopicPartition],
    committed: dict[TopicPartition, int],
    bounds: dict[TopicPartition, tuple[int, int]],
) -> dict[TopicPartition, int]:
    if args.to_offset is not None:
        return dict.fromkeys(partitions, args.to_offset)
    if args.shift_by is not None:
        return {tp: committed.get(tp, bounds[tp][0]) + args.shift_by for tp in partitions}
    if args.to_earliest:
        return {tp: bounds[tp][0] for tp in partitions}
    if args.to_latest:
        return {tp: bounds[tp][1] for tp in partitions}
    if args.to_datetime is not None:
        when = parse_datetime(args.to_datetime, option="--to-datetime")
    else:
        when = datetime.now(UTC) - parse_duration(args.by_duration, option="--by-duration")
    found = await offsets_at(settings.kafka, partitions, int(when.timestamp() * 1000))
    return {tp: bounds[tp][1] if offset is None else offset for tp, offset in found.items()}


async def _offsets_rewind(
    args: argparse.Namespace, settings: InvalidatorSettings, catalogue: Catalogue
) -> int:
    group = settings.group_id(args.region)
    if not await group_exists(settings.kafka, group):
        raise OperatorInputError(
            f"group {group} does not exist on the broker: no invalidator of region "
            f"{args.region} ever committed (check INVALIDATOR_GROUP_PREFIX)"
        )
    bounds = await log_bounds(settings.kafka, _topics(catalogue, args.topic))
    partitions = _select(sorted(bounds), parse_partitions(args.partitions))
    committed = await committed_offsets(settings.kafka, group)
    desired = await _desired_offsets(args, settings, partitions, committed, bounds)
    plan = plan_rewind(committed, bounds, desired)
    state = await group_state(settings.kafka, group)
    members = [f"{m.client_id}@{m.host}" for m in state.members]
    skipped = sum(max(0, -row.replayed) for row in plan)
    report = {
        "region": args.region,
        "group": group,
        "executed": False,
        "events_to_replay": sum(max(0, row.replayed) for row in plan),
        "events_skipped": skipped,
        "plan": [_row(row) for row in plan],
    }
    text = [
        _table(
            ["TOPIC", "PARTITION", "CURRENT", "NEW", "REPLAYED", "NOTE"],
            [
                [r.partition.topic, r.partition.partition, r.current, r.new, r.replayed, r.note]
                for r in plan
            ],
        ),
        f"{report['events_to_replay']} events will be purged again by group {group}"
        + (f"; {report['events_skipped']} not yet purged will be SKIPPED." if skipped else "."),
    ]
    if not args.execute:
        _print(
            args, report, "\n".join([*text, "Dry run: nothing changed. Add --execute to apply."])
        )
        return EXIT_OK
    if members:
        report["refused"] = f"group has active members: {', '.join(members)}"
        _print(
            args,
            report,
            "\n".join(
                [
                    *text,
                    f"Refused: group {group} has active members ({', '.join(members)}). Stop the "
                    f"region's invalidators, rewind, then start them again (README, Operators).",
                ]
            ),
        )
        return EXIT_REFUSED
    await commit_group_offsets(settings.kafka, group, {row.partition: row.new for row in plan})
    report["executed"] = True
    _print(args, report, "\n".join([*text, f"Applied: group {group} now starts from NEW."]))
    return EXIT_OK


def _row(row: RewindRow) -> dict[str, Any]:
    return {
        "topic": row.partition.topic,
        "partition": row.partition.partition,
        "current": row.current,
        "new": row.new,
        "replayed": row.replayed,
        "note": row.note,
    }


async def _window(
    args: argparse.Namespace, settings: InvalidatorSettings, catalogue: Catalogue
) -> dict[TopicPartition, tuple[int, int]]:
    bounds = await log_bounds(settings.kafka, _topics(catalogue, args.topic))
    partitions = _select(sorted(bounds), parse_partitions(args.partitions))
    if args.from_offset is not None:
        starts = dict.fromkeys(partitions, args.from_offset)
    else:
        start = parse_when(args.start, option="--from")
        found = await offsets_at(settings.kafka, partitions, int(start.timestamp() * 1000))
        starts = {tp: bounds[tp][1] if o is None else o for tp, o in found.items()}
    if args.to_offset is not None:
        ends = dict.fromkeys(partitions, args.to_offset)
    elif args.end is not None:
        end = parse_when(args.end, option="--to")
        found = await offsets_at(settings.kafka, partitions, int(end.timestamp() * 1000))
        ends = {tp: bounds[tp][1] if o is None else o for tp, o in found.items()}
    else:
        ends = {tp: bounds[tp][1] for tp in partitions}
    return {tp: (max(starts[tp], bounds[tp][0]), min(ends[tp], bounds[tp][1])) for tp in partitions}


class _ProgressBar:
    """A one-line progress bar on standard error (only on a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        filled = int(30 * done / total)
        sys.stderr.write(f"\r{phase:5} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


async def _replay(
    args: argparse.Namespace, settings: InvalidatorSettings, catalogue: Catalogue
) -> int:
    window = await _window(args, settings, catalogue)
    progress = _ProgressBar(not args.json)
    plan = await plan_window(settings.kafka, catalogue, window, progress=progress)
    namespaces = list(plan.namespaces)
    report: dict[str, Any] = {
        "region": args.region,
        "window": {f"{tp.topic}[{tp.partition}]": list(b) for tp, b in sorted(window.items())},
        "records": plan.records,
        "events": plan.events,
        "rejected": dict(plan.rejected),
        "namespaces": len(namespaces),
        "dry_run": args.dry_run,
    }
    if args.dry_run:
        keys = await _known_key_counts(settings, args.region, namespaces)
        report["purges"] = [
            {
                "namespace": ns.namespace.name,
                "key": ns.key,
                "strategy": ns.namespace.strategy.value,
                "keys": keys.get(ns),
            }
            for ns in namespaces
        ]
        lines = [
            f"{ns.namespace.name:24} {ns.key:40} {ns.namespace.strategy.value:10} "
            f"{'?' if keys.get(ns) is None else keys[ns]} keys"
            for ns in namespaces
        ]
        _print(
            args,
            report,
            "\n".join(
                [
                    *lines,
                    f"Dry run: {plan.records} records, {plan.events} events -> {len(namespaces)} "
                    f"namespaces would be purged in region {args.region}; nothing was written.",
                ]
            ),
        )
        return EXIT_OK
    targets = RegionTargets(args.region, settings.targets(args.region))
    try:
        failed = await purge_planned(targets, namespaces, progress=progress)
    finally:
        await targets.close()
    report["failed_targets"] = sorted(failed)
    _print(
        args,
        report,
        (
            f"Replayed {plan.records} records ({plan.events} events, rejected "
            f"{dict(plan.rejected) or 'none'}) as {len(namespaces)} purges in region {args.region}"
            + (
                f"; FAILED on {', '.join(sorted(failed))}"
                if failed
                else "; committed offsets untouched."
            )
        ),
    )
    return EXIT_REFUSED if failed else EXIT_OK


async def _known_key_counts(
    settings: InvalidatorSettings, region: str, namespaces: Sequence[BoundNamespace]
) -> dict[BoundNamespace, int | None]:
    """Keys each purge would remove: 1 for generation and exact, the index size for index
    (read-only), unknown for scan (it would have to scan)."""
    counts: dict[BoundNamespace, int | None] = {}
    indexed = [ns for ns in namespaces if ns.namespace.strategy is PurgeStrategy.INDEX]
    for ns in namespaces:
        strategy = ns.namespace.strategy
        counts[ns] = None if strategy is PurgeStrategy.SCAN else 1
    if indexed:
        targets = RegionTargets(region, settings.targets(region)[:1])
        try:
            for ns in indexed:
                counts[ns] = await targets.read_only_count(index_key(ns))
        finally:
            await targets.close()
    return counts


async def _purge(
    args: argparse.Namespace, settings: InvalidatorSettings, catalogue: Catalogue
) -> int:
    params: dict[str, str] = {}
    for item in args.params:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise OperatorInputError(f"{item!r}: write PARAM=VALUE, e.g. company_id=42")
        params[name] = value
    bound = catalogue.namespace(args.namespace).bind(**params)
    targets_config = settings.targets(args.region)
    names = ", ".join(t.name for t in targets_config)
    if not args.yes:
        if not sys.stdin.isatty():
            print(
                f"purge {bound.key} in region {args.region}: pass --yes to confirm", file=sys.stderr
            )
            return EXIT_REFUSED
        answer = await asyncio.to_thread(
            input, f"Purge {args.namespace} {bound.key} in region {args.region} ({names})? [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            print("not purged", file=sys.stderr)
            return EXIT_REFUSED
    targets = RegionTargets(args.region, targets_config)
    try:
        failed = await targets.purge([bound])
    finally:
        await targets.close()
    report = {
        "region": args.region,
        "namespace": args.namespace,
        "key": bound.key,
        "targets": [t.name for t in targets_config],
        "failed_targets": sorted(failed),
    }
    _print(
        args,
        report,
        f"purged {bound.key} in region {args.region} on {names}"
        if not failed
        else f"purge of {bound.key} FAILED on {', '.join(sorted(failed))}",
    )
    return EXIT_REFUSED if failed else EXIT_OK
