"""What a parsed command runs: each command's parser names its handler with
`set_defaults(handler=...)`, so the command that runs is the one that was parsed, and a command
registered without a handler is an error, never another command."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from contracts.catalogue import Catalogue
from invalidator.settings import InvalidatorSettings

CommandHandler = Callable[[argparse.Namespace, InvalidatorSettings], int]
"""Runs a parsed command with the settings; returns its exit status."""

CatalogueCommand = Callable[
    [argparse.Namespace, InvalidatorSettings, Catalogue], Coroutine[Any, Any, int]
]
"""A command that needs the settings' catalogue, as a coroutine function."""

SettingsCommand = Callable[[argparse.Namespace, InvalidatorSettings], Coroutine[Any, Any, int]]
"""A command that needs the settings only, as a coroutine function."""


def set_handler(parser: argparse.ArgumentParser, handler: CommandHandler) -> None:
    """Make `handler` what `parser`'s command runs."""
    parser.set_defaults(handler=handler)


def handler_of(args: argparse.Namespace) -> CommandHandler | None:
    """The handler the parsed command named; None when its parser named none."""
    handler: CommandHandler | None = getattr(args, "handler", None)
    return handler


def on_catalogue(command: CatalogueCommand) -> CommandHandler:
    """A handler that loads the settings' catalogue (a SettingsError when none is set), then
    runs `command` to its end."""

    def handle(args: argparse.Namespace, settings: InvalidatorSettings) -> int:
        catalogue = settings.load_catalogue()
        return asyncio.run(command(args, settings, catalogue))

    return handle


def on_settings(command: SettingsCommand) -> CommandHandler:
    """A handler that runs `command`, which needs no catalogue, to its end."""

    def handle(args: argparse.Namespace, settings: InvalidatorSettings) -> int:
        return asyncio.run(command(args, settings))

    return handle
