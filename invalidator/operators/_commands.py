"""Every operator command of `invalidator`: registering them on its parser, running the chosen one.

`offsets show | rewind`, `replay`, `purge`, `dead-letters show | redrive`, `topics check |
create`, `catalogue check | show | export`. Exit codes scripts can rely on
(`invalidator.operators._console`): 0 done; 1 refused (active members, declined confirmation, a
failed check) or a purge failed on some target; 2 bad input or configuration; 3 a service
(Kafka, Redis) cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio

from invalidator.operators._catalogue_commands import add_catalogue_commands, run_catalogue_command
from invalidator.operators._dead_letter_commands import (
    add_dead_letter_commands,
    run_dead_letter_command,
)
from invalidator.operators._offsets_commands import add_offsets_commands, run_offsets_command
from invalidator.operators._replay_commands import add_replay_commands, run_replay_command
from invalidator.operators._topics_commands import add_topics_commands, run_topics_command
from invalidator.settings import InvalidatorSettings


def add_operator_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register every operator command on the `invalidator` parser's subcommands."""
    add_offsets_commands(commands)
    add_replay_commands(commands)
    add_dead_letter_commands(commands)
    add_topics_commands(commands)
    add_catalogue_commands(commands)


def run_operator_command(args: argparse.Namespace, settings: InvalidatorSettings) -> int:
    """Run the operator command `args` names; returns the exit status."""
    if args.command == "catalogue":
        return run_catalogue_command(args, settings)
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: InvalidatorSettings) -> int:
    if args.command == "dead-letters":
        # Loads the catalogue only to redrive: dead letters can be read with a broken one.
        return await run_dead_letter_command(args, settings)
    catalogue = settings.load_catalogue()
    if args.command == "topics":
        return await run_topics_command(args, settings, catalogue)
    if args.command == "offsets":
        return await run_offsets_command(args, settings, catalogue)
    return await run_replay_command(args, settings, catalogue)
