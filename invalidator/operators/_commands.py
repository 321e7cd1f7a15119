"""Operator commands: `offsets show`, `offsets rewind`, `replay`, `purge`.

Exit codes scripts can rely on (`invalidator.operators._console`): 0 done; 1 refused (active
members, declined confirmation) or a purge failed on some target; 2 bad input or configuration;
3 a service (Kafka, Redis) cannot be reached.
"""

from __future__ import annotations

import argparse

from invalidator.operators._offsets_commands import offsets_rewind, offsets_show
from invalidator.operators._replay_commands import purge, replay
from invalidator.operators._window import add_window_options
from invalidator.settings import InvalidatorSettings


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
    add_window_options(replay, required=True)
    replay.add_argument("--topic", help="one topic of the catalogue (default: all)")
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
        return await offsets_show(args, settings, catalogue)
    region = args.region
    settings.targets(region)  # unknown region: SettingsError naming the known ones
    if args.command == "offsets":
        return await offsets_rewind(args, settings, catalogue)
    if args.command == "replay":
        return await replay(args, settings, catalogue)
    return await purge(args, settings, catalogue)
