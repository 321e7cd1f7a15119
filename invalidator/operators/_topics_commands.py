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
from invalidator.operators._handlers import on_catalogue, set_handler
from invalidator.operators._topics import (
    DEFAULT_PARTITIONS,
    TopicNeed,
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
        set_handler(action, on_catalogue(run_topics_command))


async def run_topics_command(
    args: argparse.Namespace, settings: InvalidatorSettings, catalogue: Catalogue
) -> int:
    """Run `topics check`, or `topics create` (creating first); returns the exit status."""
    needs = needed_topics(settings, catalogue)
    names = [need.name for need in needs]
    own = [need.name for need in needs if need.mirrored_from is None]
    created: list[str] = []
    if args.action == "create":
        # Mirrored topics are MirrorMaker's: created here, they would miss its partition count
        # and configs, and it would not see them as its own.
        created = await create_topics(
            settings,
            own,
            partitions=args.partitions,
            replication_factor=args.replication_factor,
        )
    absent = await missing_topics(settings, names)
    missing = [name for name in absent if name in own]
    awaited = [name for name in absent if name not in own]
    rows = [
        {
            "topic": need.name,
            "for": need.why,
            "status": _status(need, absent, created),
            "mirrored_from": need.mirrored_from,
        }
        for need in needs
    ]
    text = table(["TOPIC", "STATUS", "FOR"], [[r["topic"], r["status"], r["for"]] for r in rows])
    if missing:
        text += (
            f"\n{len(missing)} missing: run `invalidator topics create` (events are keyed by "
            "aggregate, so partitions can be added later only at the cost of per-aggregate order)"
        )
    if awaited:
        text += (
            f"\n{len(awaited)} mirrored topic(s) not there yet: MirrorMaker creates them once "
            "it runs and the source topic exists (it looks every refresh.topics.interval.seconds)"
            "; an invalidator waits for them"
        )
    emit(
        args,
        {"topics": rows, "missing": missing, "awaited_from_mirror": awaited, "created": created},
        text,
    )
    return EXIT_REFUSED if missing else EXIT_OK


def _status(need: TopicNeed, absent: list[str], created: list[str]) -> str:
    if need.name in created:
        return "created"
    if need.name not in absent:
        return "ok"
    return "missing" if need.mirrored_from is None else "awaited from MirrorMaker"
