"""What an operator's options select on the log: topics (`--topic`), partitions
(`--partitions`), a window of offsets (`--from`, `--to`); and reading that window.

`replay` (event topics) and `dead-letters` (the dead-letter topic) express positions the same
way: a time or a duration ago (`--from`, `--to`), or an offset (`--from-offset`, `--to-offset`),
clamped to each partition's log. What cannot mean a window (a negative offset, an end before
the start) is refused before anything is read (`check_window_options`).
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

from aiokafka import ConsumerRecord, TopicPartition

from contracts.connections import KafkaConnection
from contracts.errors import OperatorInputError
from invalidator.operators._offsets import kafka_consumer, log_bounds, offsets_at
from invalidator.times import parse_when

OFFSET_OPTIONS = (("from_offset", "--from-offset"), ("to_offset", "--to-offset"))
"""The offset options of `add_window_options`: (attribute, option)."""

Window = dict[TopicPartition, tuple[int, int]]
"""Per partition, the first offset to read and the offset to stop before."""


def topics_of(known: Sequence[str], topic: str | None) -> list[str]:
    """The topics an operator named with --topic, among the `known` event topics (all of them
    by default: the catalogue's, and those mirrored into this cluster)."""
    if topic is None:
        return list(known)
    if topic not in known:
        raise OperatorInputError(
            f"--topic {topic!r} is not an event topic of the catalogue on this cluster; "
            f"known: {', '.join(known)}"
        )
    return [topic]


def select_partitions(
    partitions: Sequence[TopicPartition], wanted: set[int] | None
) -> list[TopicPartition]:
    """The partitions an operator named with --partitions (all by default)."""
    if wanted is None:
        return list(partitions)
    chosen = [tp for tp in partitions if tp.partition in wanted]
    missing = wanted - {tp.partition for tp in chosen}
    if missing:
        raise OperatorInputError(f"--partitions: no partition {sorted(missing)} in these topics")
    return chosen


def parse_partitions(text: str | None) -> set[int] | None:
    """`0,1,5` as a set of partition numbers (None: every partition)."""
    if text is None:
        return None
    try:
        numbers = {int(part) for part in text.split(",") if part.strip()}
    except ValueError:
        raise OperatorInputError(f"--partitions {text!r}: write numbers like 0,1,5") from None
    if not numbers or min(numbers) < 0:
        raise OperatorInputError(f"--partitions {text!r}: write numbers like 0,1,5")
    return numbers


async def selected_bounds(
    args: argparse.Namespace, kafka: KafkaConnection, topics: list[str]
) -> dict[TopicPartition, tuple[int, int]]:
    """(log start, log end) of each partition of `topics` that `--partitions` names (all of
    them without it)."""
    bounds = await log_bounds(kafka, topics)
    chosen = select_partitions(sorted(bounds), parse_partitions(args.partitions))
    return {tp: bounds[tp] for tp in chosen}


def add_window_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """Add --from/--from-offset (one of them, when `required`) and --to/--to-offset."""
    start = parser.add_mutually_exclusive_group(required=required)
    start.add_argument("--from", dest="start", metavar="WHEN", help="a time or a duration ago")
    start.add_argument("--from-offset", type=int, metavar="N")
    parser.add_argument(
        "--to", dest="end", metavar="WHEN", help="a time or a duration ago (default: now)"
    )
    parser.add_argument("--to-offset", type=int, metavar="N", help="stop before this offset")
    parser.add_argument("--partitions", help="e.g. 0,1,5 (default: all)")


def check_window_options(args: argparse.Namespace) -> None:
    """Refuse, with an OperatorInputError naming the option, window options that cannot mean a
    window: a negative offset, or an end before the start (both offsets, or both times).

    Nothing is clamped silently: an offset below a partition's log start still reads from the
    log start, but a negative one is a mistake (`-5` is not "5 back").
    """
    for attribute, option in OFFSET_OPTIONS:
        offset = getattr(args, attribute)
        if offset is not None and offset < 0:
            raise OperatorInputError(
                f"{option} {offset}: an offset is 0 or more (the log start is clamped to); "
                "to start some time ago write --from 15m"
            )
    if (
        args.from_offset is not None
        and args.to_offset is not None
        and args.to_offset < args.from_offset
    ):
        raise OperatorInputError(
            f"--to-offset {args.to_offset} is before --from-offset {args.from_offset}: "
            "the window would be empty; write the earlier offset in --from-offset"
        )
    if args.start is not None and args.end is not None:
        now = datetime.now(UTC)  # one instant for both: `--from 1h --to 1h` is not reversed
        start = parse_when(args.start, option="--from", now=now)
        end = parse_when(args.end, option="--to", now=now)
        if end < start:
            raise OperatorInputError(
                f"--to {args.end!r} ({end.isoformat()}) is earlier than --from {args.start!r} "
                f"({start.isoformat()}): the window would be empty; write the earlier time in "
                "--from"
            )


async def window_of(
    args: argparse.Namespace, kafka: KafkaConnection, bounds: dict[TopicPartition, tuple[int, int]]
) -> Window:
    """The window the options of `add_window_options` select on the partitions of `bounds`.

    args: the parsed options (no --from or --from-offset: from the log start).
    bounds: (log start, log end) of each partition to read (`selected_bounds`).
    """
    partitions = sorted(bounds)
    if args.from_offset is not None:
        starts = dict.fromkeys(partitions, args.from_offset)
    elif args.start is not None:
        starts = await _offsets_at_time(kafka, args.start, "--from", partitions)
    else:
        starts = {tp: bounds[tp][0] for tp in partitions}
    if args.to_offset is not None:
        ends = dict.fromkeys(partitions, args.to_offset)
    elif args.end is not None:
        ends = await _offsets_at_time(kafka, args.end, "--to", partitions)
    else:
        ends = {tp: bounds[tp][1] for tp in partitions}
    return {tp: (max(starts[tp], bounds[tp][0]), min(ends[tp], bounds[tp][1])) for tp in partitions}


async def _offsets_at_time(
    kafka: KafkaConnection, when: str, option: str, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    moment = parse_when(when, option=option)
    return await offsets_at(kafka, partitions, int(moment.timestamp() * 1000))


def window_size(window: Window) -> int:
    """How many offsets the window spans."""
    return sum(max(0, end - start) for start, end in window.values())


async def read_window(
    kafka: KafkaConnection, window: Window
) -> AsyncIterator[list[ConsumerRecord]]:
    """Yield the records of `[start, end)` of every partition, a fetched batch at a time.

    Reads outside every consumer group: no offset is committed anywhere.
    """
    todo = {tp: bounds for tp, bounds in window.items() if bounds[1] > bounds[0]}
    if not todo:
        return
    async with kafka_consumer(kafka) as consumer:
        consumer.assign(list(todo))
        for tp, (start, _) in todo.items():
            consumer.seek(tp, start)
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=1000, max_records=5000)
            records = [
                record
                for tp, fetched in batch.items()
                for record in fetched
                if record.offset < todo[tp][1]
            ]
            for tp in list(todo):
                # The position, not the last record, says when a partition is done: offsets
                # can have gaps (transaction markers, compaction).
                if await consumer.position(tp) >= todo[tp][1]:
                    del todo[tp]
                    consumer.pause(tp)
            yield records
