"""The invalidator's operator tooling: the commands beside `invalidator run` and what they read
from and write to Kafka.

The public surface is what `__all__` names: a group's position on the broker (read, committed,
moved from outside the group), the topics a catalogue needs, the AsyncAPI document, the exit
codes scripts rely on, and the commands themselves for the `invalidator` parser, each with the
handler it runs. The modules are
private (`_offsets.py`, `_replay_commands.py`, ...): their names may change between releases.
"""

from invalidator.operators._asyncapi import asyncapi_document
from invalidator.operators._commands import add_operator_commands
from invalidator.operators._console import (
    EXIT_INPUT,
    EXIT_NOT_SEEN,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    add_catalogue_option,
)
from invalidator.operators._handlers import handler_of, set_handler
from invalidator.operators._offsets import (
    GroupMember,
    GroupState,
    PartitionLag,
    commit_group_offsets,
    committed_offsets,
    end_offsets,
    group_lag,
    group_state,
    log_bounds,
    offsets_at,
    records_at,
    start_at_log_end,
)
from invalidator.operators._topics import (
    DEFAULT_PARTITIONS,
    TopicNeed,
    create_topics,
    missing_topics,
    needed_topics,
    require_topics,
)

__all__ = [
    "DEFAULT_PARTITIONS",
    "EXIT_INPUT",
    "EXIT_NOT_SEEN",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_UNAVAILABLE",
    "GroupMember",
    "GroupState",
    "PartitionLag",
    "TopicNeed",
    "add_catalogue_option",
    "add_operator_commands",
    "asyncapi_document",
    "commit_group_offsets",
    "committed_offsets",
    "create_topics",
    "end_offsets",
    "group_lag",
    "group_state",
    "handler_of",
    "log_bounds",
    "missing_topics",
    "needed_topics",
    "offsets_at",
    "records_at",
    "require_topics",
    "set_handler",
    "start_at_log_end",
]
