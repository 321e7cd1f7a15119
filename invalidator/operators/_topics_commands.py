"""`invalidator topics check | create`: the topics the catalogue needs, present or created."""

from __future__ import annotations

import argparse

from contracts.catalogue import Catalogue
from invalidator.operators._console import (
    EXIT_OK,
    EXIT_REFUSED,
    add_catalogue_option,
    add_json_option,
    emit,
    table,
)
from invalidator.operators._topics import (
    DEFAULT_PARTITIONS,
    create_topics,
    missing_topics,
    needed_topics,
)
from invalidator.settings import InvalidatorSettings


def add_topics_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `topics check` and `topics create`."""
    topics = commands.add_parser("topics", help="check or create the topics the catalogue needs")
    actions = topics.add_subparsers(dest="action", required=True)
    check = actions.add_parser("check", help="list the needed topics; exit 1 if one is missing")
    create = actions.add_parser("create", help="create the needed topics that are missing")
    create.add_argument(
        "--partitions",
        type=int,
        default=DEFAULT_PARTITIONS,
        help=f"partitions per topic (default {DEFAULT_PARTITIONS}; the most invalidators of "
        "one region that can share the work)",
    )
    create.add_argument(
        "--replication-factor", type=int, default=1, help="copies of each partition (default 1)"
    )
    for action in (check, create):
        add_catalogue_option(action)
        add_json_option(action)


async def run_topics_command(
    args: argparse.Namespace, settings: InvalidatorSettings, catalogue: Catalogue
) -> int:
    """Run `topics <action>`; returns the exit status."""
    needs = needed_topics(settings, catalogue)
    names = [need.name for need in needs]
    created: list[str] = []
    if args.action == "create":
        created = await create_topics(
            settings,
            names,
            partitions=args.partitions,
            replication_factor=args.replication_factor,
        )
    missing = await missing_topics(settings, names)
    rows = [
        {
            "topic": need.name,
            "for": need.why,
            "status": "missing"
            if need.name in missing
            else "created"
            if need.name in created
            else "ok",
        }
        for need in needs
    ]
    text = table(["TOPIC", "STATUS", "FOR"], [[r["topic"], r["status"], r["for"]] for r in rows])
    if missing:
        text += (
            f"\n{len(missing)} missing: run `invalidator topics create` (events are keyed by "
            "aggregate, so partitions can be added later only at the cost of per-aggregate order)"
        )
    emit(args, {"topics": rows, "missing": missing, "created": created}, text)
    return EXIT_REFUSED if missing else EXIT_OK
