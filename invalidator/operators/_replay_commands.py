"""`invalidator replay` and `invalidator purge`: purging by hand, group offsets untouched."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from contracts.catalogue import Catalogue
from contracts.errors import OperatorInputError
from contracts.layout import index_key
from contracts.namespaces import BoundNamespace, PurgeStrategy
from invalidator.operators._console import (
    EXIT_OK,
    EXIT_REFUSED,
    ProgressBar,
    add_catalogue_option,
    add_json_option,
    emit,
)
from invalidator.operators._handlers import on_catalogue, set_handler
from invalidator.operators._replay import plan_window, purge_planned, raise_if_refused
from invalidator.operators._topics import present_event_topics
from invalidator.operators._window import (
    Window,
    add_window_options,
    check_window_options,
    selected_bounds,
    topics_of,
    window_of,
)
from invalidator.planner import grouped
from invalidator.settings import InvalidatorSettings
from invalidator.targets import RegionTargets


def add_replay_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `replay` and `purge`."""
    replay = commands.add_parser(
        "replay", help="purge what a window of events purged, group untouched"
    )
    replay.add_argument("--region", required=True)
    add_window_options(replay, required=True)
    replay.add_argument("--topic", help="one topic of the catalogue (default: all)")
    replay.add_argument("--dry-run", action="store_true", help="print what would be purged")
    purge = commands.add_parser("purge", help="purge one concrete namespace by hand")
    purge.add_argument("--region", required=True)
    purge.add_argument("namespace", help="a namespace of the catalogue, e.g. company_orders")
    purge.add_argument("params", nargs="*", metavar="PARAM=VALUE", help="e.g. company_id=42")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    for command in (replay, purge):
        add_catalogue_option(command)
        add_json_option(command)
    set_handler(replay, on_catalogue(replay_window))
    set_handler(purge, on_catalogue(purge_namespace))


async def _window(
    args: argparse.Namespace, settings: InvalidatorSettings, catalogue: Catalogue
) -> Window:
    bounds = await selected_bounds(
        args, settings.kafka, topics_of(await present_event_topics(settings, catalogue), args.topic)
    )
    return await window_of(args, settings.kafka, bounds)


async def replay_window(
    args: argparse.Namespace, settings: InvalidatorSettings, catalogue: Catalogue
) -> int:
    """`replay`: purge in a region what a window of events purged, the group's offsets
    untouched; returns the exit status."""
    settings.targets(args.region)  # unknown region: SettingsError naming the known ones
    check_window_options(args)
    window = await _window(args, settings, catalogue)
    progress = ProgressBar(not args.json)
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
        emit(
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
    await raise_if_refused(settings.targets(args.region), failed)
    report["failed_targets"] = sorted(failed)
    report["errors"] = {name: str(error) for name, error in sorted(failed.items())}
    emit(
        args,
        report,
        (
            f"Replayed {plan.records} records ({plan.events} events, rejected "
            f"{dict(plan.rejected) or 'none'}) as {len(namespaces)} purges in region {args.region}"
            + (f"; FAILED on {_failures(failed)}" if failed else "; committed offsets untouched.")
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


async def purge_namespace(
    args: argparse.Namespace, settings: InvalidatorSettings, catalogue: Catalogue
) -> int:
    """`purge`: purge one concrete namespace in a region by hand; returns the exit status."""
    targets_config = settings.targets(args.region)  # unknown region: a SettingsError
    params: dict[str, str] = {}
    for item in args.params:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise OperatorInputError(f"{item!r}: write PARAM=VALUE, e.g. company_id=42")
        if name in params:
            raise OperatorInputError(
                f"{name} is given twice ({params[name]!r} and {value!r}); a purge names one "
                "concrete namespace: run one command per value"
            )
        params[name] = value
    bound = catalogue.namespace(args.namespace).bind(**params)
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
        failed = await targets.purge(grouped([bound]))
    finally:
        await targets.close()
    await raise_if_refused(targets_config, failed)
    report = {
        "region": args.region,
        "namespace": args.namespace,
        "key": bound.key,
        "targets": [t.name for t in targets_config],
        "failed_targets": sorted(failed),
        "errors": {name: str(error) for name, error in sorted(failed.items())},
    }
    emit(
        args,
        report,
        f"purged {bound.key} in region {args.region} on {names}"
        if not failed
        else f"purge of {bound.key} FAILED on {_failures(failed)}",
    )
    return EXIT_REFUSED if failed else EXIT_OK


def _failures(failed: dict[str, Exception]) -> str:
    return "; ".join(f"{name} ({error})" for name, error in sorted(failed.items()))
