"""`invalidator watch`: the consistency watchdog, long-running (its own group, metrics) or
one-shot (`--since`: a window read outside every group, one summary, an exit status)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from contracts.catalogue import Catalogue
from contracts.connection_checks import check_kafka, check_redis
from contracts.errors import OperatorInputError
from invalidator.operators._console import (
    EXIT_NOT_SEEN,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    add_catalogue_option,
    add_json_option,
    emit,
    iso_time,
)
from invalidator.operators._handlers import on_catalogue, set_handler
from invalidator.operators._offsets import log_bounds, offsets_at
from invalidator.operators._topics import present_event_topics, require_topics
from invalidator.operators._window import Window, read_window
from invalidator.settings import InvalidatorSettings
from invalidator.times import parse_when
from invalidator.watchdog import Watchdog, WatchReport, WatchService

_TEXT_NOT_SEEN = 20
"""Purges not seen listed per region in the text summary (the log and --json have every one)."""


def add_watch_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `watch`."""
    watch = commands.add_parser(
        "watch",
        help="look in every region's Redis for the purge of each sampled event",
        description="Without --since: run until SIGTERM as the watchdog's own consumer group, "
        "with metrics. With --since: read from then to the log end as of the start, wait for "
        f"every check, print a summary and exit: {EXIT_OK} when no purge is missing, "
        f"{EXIT_NOT_SEEN} when one is not seen, {EXIT_UNAVAILABLE} when none is missing but a "
        "region could not be read.",
    )
    watch.add_argument(
        "--since", metavar="WHEN", help="one-shot: a time or a duration ago, e.g. 10m"
    )
    add_catalogue_option(watch)
    add_json_option(watch)
    set_handler(watch, on_catalogue(watch_purges))


async def watch_purges(
    args: argparse.Namespace, settings: InvalidatorSettings, catalogue: Catalogue
) -> int:
    """`watch`: one-shot with --since, else until SIGTERM or SIGINT; returns the exit status."""
    if not settings.regions:
        raise OperatorInputError(
            "INVALIDATOR_REGIONS names no region: the watchdog looks in every region's Redis, "
            'e.g. INVALIDATOR_REGIONS=\'{"eu": [{"name": "eu-main", "url": "redis://host:6379/0"}]}\''
        )
    settings.watchdog_group()  # one named like an invalidator's is refused in either mode
    if args.since is None:
        if args.json:
            raise OperatorInputError("--json is the one-shot summary: give --since too, e.g. 10m")
        return await _watch_until_stopped(settings, catalogue)
    return await _watch_window(args, settings, catalogue)


async def _watch_until_stopped(settings: InvalidatorSettings, catalogue: Catalogue) -> int:
    service = WatchService(settings, catalogue)
    await check_kafka(settings.kafka)
    for targets in settings.regions.values():
        for target in targets:
            await check_redis(target)
    absent = await require_topics(settings, catalogue)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, service.stop)
    await service.run(absent_topics=absent)
    return EXIT_OK


async def _watch_window(
    args: argparse.Namespace, settings: InvalidatorSettings, catalogue: Catalogue
) -> int:
    since = parse_when(args.since, option="--since")
    bounds = await log_bounds(settings.kafka, await present_event_topics(settings, catalogue))
    starts = await offsets_at(settings.kafka, sorted(bounds), int(since.timestamp() * 1000))
    window: Window = {tp: (max(starts[tp], start), end) for tp, (start, end) in bounds.items()}
    report = WatchReport()
    watchdog = Watchdog(catalogue, settings.regions, settings.watch, listeners=[report])
    try:
        async for records in read_window(settings.kafka, window):
            for record in records:
                watchdog.observe(record)
            await watchdog.look()
        await watchdog.settle()
    finally:
        await watchdog.close()
    summary = _summary(args, settings, report, window, since_ms=int(since.timestamp() * 1000))
    emit(args, summary, _text(summary))
    if report.missing():
        return EXIT_NOT_SEEN
    return EXIT_UNAVAILABLE if report.unknown() else EXIT_OK


def _summary(
    args: argparse.Namespace,
    settings: InvalidatorSettings,
    report: WatchReport,
    window: Window,
    *,
    since_ms: int,
) -> dict[str, Any]:
    """The one-shot's JSON: no URL, no credential (targets by name)."""
    return {
        "since": args.since,
        "since_time": iso_time(since_ms),
        "window": {f"{tp.topic}[{tp.partition}]": list(b) for tp, b in sorted(window.items())},
        "sample_every": settings.watch.sample_every,
        "deadline_s": settings.watch.deadline_s,
        "grace_s": settings.watch.grace_s,
        "records": report.records,
        "sampled": report.sampled,
        "skipped": dict(sorted(report.skipped.items())),
        "regions": report.regions(),
        "missing": report.missing(),
        "unknown": report.unknown(),
    }


def _text(summary: dict[str, Any]) -> str:
    lines = [
        f"{summary['records']} records read, {summary['sampled']} sampled (1 in "
        f"{summary['sample_every']}), skipped {summary['skipped'] or 'none'}; deadline "
        f"{summary['deadline_s']:g} s"
    ]
    for region, figures in summary["regions"].items():
        within = ", ".join(
            f"{name} {'-' if share is None else f'{share:.4%}'}"
            for name, share in figures["seen_within"].items()
        )
        events = ", ".join(f"{outcome} {n}" for outcome, n in figures["events"].items() if n)
        lines.append(
            f"{region}: events {events or 'none'}; seen within {within}; lag p50 "
            f"{figures['lag_ms']['p50']:.1f} ms, p99 {figures['lag_ms']['p99']:.1f} ms"
        )
        not_seen = figures["not_seen"]
        lines.extend(
            f"  NOT SEEN {m['event_id']} {m['event_type']} {m['namespace']} {m['key']} "
            f"on {m['target']}"
            for m in not_seen[:_TEXT_NOT_SEEN]
        )
        if len(not_seen) > _TEXT_NOT_SEEN:
            lines.append(f"  ... and {len(not_seen) - _TEXT_NOT_SEEN} more (--json lists them all)")
    return "\n".join(lines)
