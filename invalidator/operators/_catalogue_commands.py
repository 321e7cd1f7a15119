"""`invalidator catalogue check | show | export`: the cache's API, checked and published."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from contracts.docs import catalogue_json, catalogue_markdown, catalogue_table
from contracts.errors import CatalogueError
from invalidator.operators._asyncapi import asyncapi_document
from invalidator.operators._console import EXIT_OK, EXIT_REFUSED, add_catalogue_option
from invalidator.operators._handlers import set_handler
from invalidator.settings import InvalidatorSettings


def add_catalogue_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `catalogue` and its subcommands."""
    catalogue = commands.add_parser(
        "catalogue", help="check, show and export the namespace catalogue"
    )
    actions = catalogue.add_subparsers(dest="action", required=True)
    for name, help_text, handler in (
        ("check", "run every check; exit 1 with a report when one fails", check_catalogue),
        ("show", "print event -> namespace -> key shape", show_catalogue),
        ("export", "write the catalogue as markdown, JSON or AsyncAPI", export_catalogue),
    ):
        action = actions.add_parser(name, help=help_text)
        add_catalogue_option(action)
        set_handler(action, handler)
    export = actions.choices["export"]
    export.add_argument("--format", choices=("markdown", "json", "asyncapi"), default="markdown")
    export.add_argument("--output", type=Path, help="a file to write (default: standard output)")
    export.add_argument("--title", default="Cache namespace catalogue")


def check_catalogue(args: argparse.Namespace, settings: InvalidatorSettings) -> int:
    """`catalogue check`: 0 when the catalogue loads and passes every check, else 1 with the
    report."""
    try:
        catalogue = settings.load_catalogue()
    except CatalogueError as error:
        print(f"catalogue {settings.catalogue}: FAILED\n{error}", file=sys.stderr)
        return EXIT_REFUSED
    events = {m.event_type for m in catalogue.schemas.models()}
    print(
        f"catalogue {settings.catalogue}: ok ({len(catalogue.namespaces)} namespaces, "
        f"{len(events)} event types, topics {', '.join(catalogue.topics())})"
    )
    return EXIT_OK


def show_catalogue(args: argparse.Namespace, settings: InvalidatorSettings) -> int:
    """`catalogue show`: print event -> namespace -> key shape."""
    print(catalogue_table(settings.load_catalogue()))
    return EXIT_OK


def export_catalogue(args: argparse.Namespace, settings: InvalidatorSettings) -> int:
    """`catalogue export`: the catalogue as markdown, JSON or AsyncAPI, to --output or
    standard output."""
    catalogue = settings.load_catalogue()
    if args.format == "markdown":
        text = catalogue_markdown(catalogue, title=args.title) + "\n"
    elif args.format == "json":
        text = json.dumps(catalogue_json(catalogue), indent=2, sort_keys=True) + "\n"
    else:
        document = asyncapi_document(
            catalogue,
            bootstrap_servers=settings.kafka.bootstrap_servers,
            title=args.title,
            dead_letter_topic=settings.dead_letter_topic,
        )
        text = json.dumps(json.loads(document), indent=2, sort_keys=True) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    return EXIT_OK
