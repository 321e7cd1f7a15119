"""Where a group starts on a partition it never committed: earliest, latest, or a time.

A new region, or a new group prefix, has no committed offset. Kafka's `auto.offset.reset`
only offers earliest or latest and applies it silently; here the choice is a setting
(`INVALIDATOR_START_FROM`), applied on assignment to exactly the partitions with no commit,
logged, and committed at once, so that a restart before the first purge starts from the same
place instead of a later "latest".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from aiokafka import TopicPartition

from contracts.errors import OperatorInputError
from invalidator.times import DATETIME_FORMS, DURATION_FORMS, parse_when

log = logging.getLogger(__name__)

StartPosition = Literal["earliest", "latest"] | datetime

START_FROM_FORMS = (
    f"earliest, latest, a time ({DATETIME_FORMS}) or a duration before start-up ({DURATION_FORMS})"
)


def resolve_start_from(text: str, *, now: datetime | None = None) -> StartPosition:
    """`earliest`, `latest`, or the instant a time or a duration-ago names; ValueError if none.

    text: the setting's value. now: the instant a duration counts back from (default: now).
    """
    word = text.strip().lower()
    if word in ("earliest", "latest"):
        return "earliest" if word == "earliest" else "latest"
    try:
        return parse_when(
            text.strip(), option="INVALIDATOR_START_FROM", now=now or datetime.now(UTC)
        )
    except OperatorInputError:
        raise ValueError(f"{text!r} is not a start position; write {START_FROM_FORMS}") from None


def reset_before_start(start_from: str) -> Literal["earliest", "latest"]:
    """The consumer's `auto_offset_reset` for `start_from`: the end of the log unless the start
    is the log start. Records fetched before the start is decided are then never earlier than
    the start (a time or the end); at worst they are fetched twice."""
    return "earliest" if resolve_start_from(start_from) == "earliest" else "latest"


async def start_uncommitted(
    consumer: Any, assigned: set[TopicPartition], start_from: str
) -> dict[TopicPartition, int]:
    """Seek each assigned partition the group never committed to where `start_from` says, and
    commit that offset; returns the offsets chosen (partitions with a commit are untouched).

    consumer: the group's started AIOKafkaConsumer (called from on_partitions_assigned).
    assigned: the partitions just assigned.
    start_from: the `start_from` setting (already validated).
    """
    fresh = [tp for tp in sorted(assigned) if await consumer.committed(tp) is None]
    if not fresh:
        return {}
    position = resolve_start_from(start_from)
    chosen: dict[TopicPartition, int]
    if position == "earliest":
        chosen = await consumer.beginning_offsets(fresh)
    elif position == "latest":
        chosen = await consumer.end_offsets(fresh)
    else:
        chosen = await offsets_at_time(consumer, fresh, int(position.timestamp() * 1000))
    for tp, offset in chosen.items():
        consumer.seek(tp, offset)
    await consumer.commit(chosen)
    log.info(
        "never committed on %s: starting at %s (INVALIDATOR_START_FROM=%s)",
        ",".join(f"{tp.topic}[{tp.partition}]" for tp in fresh),
        ",".join(str(chosen[tp]) for tp in fresh),
        start_from,
        extra={"offsets": {f"{tp.topic}[{tp.partition}]": chosen[tp] for tp in fresh}},
    )
    return chosen


async def offsets_at_time(
    consumer: Any, partitions: Sequence[TopicPartition], timestamp_ms: int
) -> dict[TopicPartition, int]:
    """The first offset at or after `timestamp_ms` on each partition; the log end where no
    record is that late (a group started there reads the next event).

    consumer: a started AIOKafkaConsumer (a group's, or one outside every group).
    partitions: the partitions to look up. timestamp_ms: the instant, in ms since the epoch.
    """
    found = await consumer.offsets_for_times(dict.fromkeys(partitions, timestamp_ms))
    late = [tp for tp in partitions if found[tp] is None]
    ends: dict[TopicPartition, int] = await consumer.end_offsets(late) if late else {}
    return {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in partitions}
