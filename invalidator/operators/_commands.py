"""Every operator command of `invalidator`, registered on its parser with the handler it runs.

`offsets show | export | rewind`, `replay`, `purge`, `dead-letters show | redrive`, `topics check |
create`, `catalogue check | show | export`, `watch` (the consistency watchdog). Each command's
parser names its handler (`invalidator.operators._handlers`): there is no fallback command. Exit
codes scripts can rely on (`invalidator.operators._console`): 0 done; 1 refused (active members,
declined confirmation, a failed check) or a purge failed on some target; 2 bad input or
configuration; 3 a service (Kafka, Redis) cannot be reached; 4 `watch --since` saw a purge
missing.
"""

from __future__ import annotations

import argparse

from invalidator.operators._catalogue_commands import add_catalogue_commands
from invalidator.operators._dead_letter_commands import add_dead_letter_commands
from invalidator.operators._offsets_commands import add_offsets_commands
from invalidator.operators._replay_commands import add_replay_commands
from invalidator.operators._topics_commands import add_topics_commands
from invalidator.operators._watch_commands import add_watch_command


def add_operator_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register every operator command, each with its handler, on the `invalidator` parser's
    subcommands."""
    add_offsets_commands(commands)
    add_replay_commands(commands)
    add_dead_letter_commands(commands)
    add_topics_commands(commands)
    add_catalogue_commands(commands)
    add_watch_command(commands)
