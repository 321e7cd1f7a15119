"""`invalidator offsets show`, `offsets export` and `offsets rewind`: a region's group position,
served to Prometheus, and moving it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry, start_http_server

from contracts.catalogue import Catalogue
from contracts.errors import OperatorInputError
from invalidator.operators._console import (
    EXIT_OK,
    EXIT_REFUSED,
    add_catalogue_option,
    add_json_option,
    emit,
    iso_time,
    table,
)
from invalidator.operators._group_lag_export import (
    GroupLagCollector,
    GroupLagReader,
    refresh_group_lag,
)
from invalidator.operators._handlers import on_catalogue, set_handler
from invalidator.operators._offsets import (
    commit_group_offsets,
    committed_offsets,
    group_exists,
    group_lag,
    group_state,
    offsets_at,
    record_timestamps,
    uncommitted_starts,
)
from invalidator.operators._rewind import RewindRow, plan_rewind
from invalidator.operators._topics import present_event_topics
from invalidator.operators._window import selected_bounds, topics_of
from invalidator.settings import InvalidatorSettings
from invalidator.times import parse_datetime, parse_duration


def add_offsets_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `offsets show`, `offsets export` and `offsets rewind`."""
    offsets = commands.add_parser("offsets", help="inspect and rewind a region's group offsets")
    actions = offsets.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="committed offset, log end, lag and time per partition")
    show.add_argument("--region", help="one region (default: every region)")
    export = actions.add_parser(
        "export", help="serve each region group's lag to Prometheus, read from the broker"
    )
    export.add_argument("--region", help="one region (default: every region)")
    export.add_argument("--port", type=int, required=True, help="serve /metrics on this port")
    export.add_argument("--host", default="127.0.0.1", help="the address to bind")
    export.add_argument(
        "--interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between reads from the broker (default 5)",
    )
    add_catalogue_option(export)
    set_handler(export, on_catalogue(offsets_export))
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
    for action in (show, rewind):
        add_catalogue_option(action)
        add_json_option(action)
    set_handler(show, on_catalogue(offsets_show))
    set_handler(rewind, on_catalogue(offsets_rewind))


async def offsets_show(
    args: argparse.Namespace, settings: InvalidatorSettings, catalogue: Catalogue
) -> int:
    """`offsets show`: each region's group position and lag; returns the exit status."""
    regions = [args.region] if args.region else sorted(settings.regions)
    for region in regions:
        settings.targets(region)
    report: dict[str, Any] = {"regions": []}
    text = []
    topics = await present_event_topics(settings, catalogue)
    for region in regions:
        group = settings.group_id(region)
        lag = await group_lag(settings.kafka, group, topics)
        state = await group_state(settings.kafka, group)
        stamps = await record_timestamps(
            settings.kafka, {tp: p.committed - 1 for tp, p in lag.items() if p.committed}
        )
        # A partition with no commit has no lag yet: where a member would start there is the
        # INVALIDATOR_START_FROM setting's, not the log start.
        rows = [
            {
                "topic": tp.topic,
                "partition": tp.partition,
                "committed": p.committed,
                "log_end": p.end,
                "lag": None if p.committed is None else p.lag,
                "committed_record_time": iso_time(stamps.get(tp)),
            }
            for tp, p in sorted(lag.items())
        ]
        never = [r for r in rows if r["committed"] is None]
        members = [f"{m.client_id}@{m.host}" for m in state.members]
        total_lag = None if len(never) == len(rows) else sum(r["lag"] or 0 for r in rows)
        report["regions"].append(
            {
                "region": region,
                "group": group,
                "state": state.state,
                "never_committed": len(never) == len(rows),
                "uncommitted_partitions": len(never),
                "starts_from": settings.start_from,
                "members": members,
                "total_lag": total_lag,
                "partitions": rows,
            }
        )
        who = "members: " + ", ".join(members) if members else "no active member"
        if total_lag is None:
            text.append(
                f"region {region}: group {group} has never committed ({who}): no invalidator "
                f"of region {region} has purged with INVALIDATOR_GROUP_PREFIX="
                f"{settings.group_prefix}; one would start from {settings.start_from} "
                "(INVALIDATOR_START_FROM)"
            )
        else:
            text.append(
                f"region {region}: group {group}, {state.state}, {who}, total lag {total_lag}"
                + (
                    f"; {len(never)} partitions never committed (would start from "
                    f"{settings.start_from})"
                    if never
                    else ""
                )
            )
        text.append(
            table(
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
    emit(args, report, "\n".join(text))
    return EXIT_OK


async def offsets_export(
    args: argparse.Namespace, settings: InvalidatorSettings, catalogue: Catalogue
) -> int:
    """`offsets export`: serve each region group's lag on /metrics, read from the broker every
    --interval seconds, until SIGTERM or SIGINT; returns the exit status."""
    regions = [args.region] if args.region else sorted(settings.regions)
    for region in regions:
        settings.targets(region)  # unknown region: SettingsError naming the known ones
    if args.interval <= 0:
        raise OperatorInputError(f"--interval {args.interval:g}: seconds between reads, above 0")
    collector = GroupLagCollector()
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    # Listen before anything is read: a port taken is bad input, whether Kafka answers or not.
    try:
        server, thread = start_http_server(args.port, addr=args.host, registry=registry)
    except OSError as error:
        raise OperatorInputError(
            f"--host {args.host} --port {args.port}: cannot listen there ({error.strerror})"
        ) from error
    try:
        reader = GroupLagReader(
            settings.kafka,
            groups={region: settings.group_id(region) for region in regions},
            topics=await present_event_topics(settings, catalogue),
        )
        await refresh_group_lag(reader, collector)
        print(
            f"serving the lag of {', '.join(settings.group_id(r) for r in regions)} on "
            f"http://{args.host}:{args.port}/metrics, read every {args.interval:g} s",
            flush=True,
        )
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        while not stopping.is_set():
            # The period between reads; a signal ends it at once.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=args.interval)
            if not stopping.is_set():
                await refresh_group_lag(reader, collector)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
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
    return await offsets_at(settings.kafka, partitions, int(when.timestamp() * 1000))


async def offsets_rewind(
    args: argparse.Namespace, settings: InvalidatorSettings, catalogue: Catalogue
) -> int:
    """`offsets rewind`: plan moving a region's group, and apply the plan with --execute;
    returns the exit status."""
    settings.targets(args.region)  # unknown region: SettingsError naming the known ones
    if args.to_offset is not None and args.to_offset < 0:
        raise OperatorInputError(
            f"--to-offset {args.to_offset}: an offset is 0 or more; to move back by a number of "
            "records write --shift-by -N"
        )
    group = settings.group_id(args.region)
    if not await group_exists(settings.kafka, group):
        raise OperatorInputError(
            f"group {group} does not exist on the broker: no invalidator of region "
            f"{args.region} ever committed (check INVALIDATOR_GROUP_PREFIX)"
        )
    bounds = await selected_bounds(
        args, settings.kafka, topics_of(await present_event_topics(settings, catalogue), args.topic)
    )
    partitions = sorted(bounds)
    committed = await committed_offsets(settings.kafka, group)
    desired = await _desired_offsets(args, settings, partitions, committed, bounds)
    never = {tp: bounds[tp] for tp in partitions if tp not in committed}
    starts = await uncommitted_starts(settings.kafka, never, settings.start_from)
    plan = plan_rewind(committed, bounds, desired, uncommitted_starts=starts)
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
        table(
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
        emit(args, report, "\n".join([*text, "Dry run: nothing changed. Add --execute to apply."]))
        return EXIT_OK
    if members:
        report["refused"] = f"group has active members: {', '.join(members)}"
        emit(
            args,
            report,
            "\n".join(
                [
                    *text,
                    f"Refused: group {group} has active members ({', '.join(members)}). Stop the "
                    "region's invalidators, rewind, then start them again "
                    "(docs/operations.md, Operators).",
                ]
            ),
        )
        return EXIT_REFUSED
    await commit_group_offsets(settings.kafka, group, {row.partition: row.new for row in plan})
    report["executed"] = True
    emit(args, report, "\n".join([*text, f"Applied: group {group} now starts from NEW."]))
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
