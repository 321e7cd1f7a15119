"""`invalidator dead-letters show` and `dead-letters redrive`: reading dead letters back, and
re-publishing their original events to their source topic once the cause is fixed.

Positions are those of the dead-letter topic, as `replay` expresses them
(`invalidator.operators._window`): `--from`/`--to` a time or a duration ago (when a record was
dead-lettered), or `--from-offset`/`--to-offset`. `--reason` and `--group` must name a
documented reason and a configured region's group: a typo is refused, not an empty selection.
Each original event is shown and re-published once, however often it was dead-lettered
(`invalidator.operators._redrive`).
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from contracts.catalogue import Catalogue
from contracts.decoding import Rejected, RejectReason
from contracts.errors import OperatorInputError
from contracts.kafka_clients import DEFAULT_MAX_REQUEST_BYTES, idempotent_producer
from invalidator.deadletter import DEAD_LETTER_REASONS
from invalidator.operators._console import (
    EXIT_OK,
    EXIT_REFUSED,
    add_catalogue_option,
    add_json_option,
    emit,
    iso_time,
    table,
)
from invalidator.operators._handlers import on_catalogue, on_settings, set_handler
from invalidator.operators._offsets import log_bounds, records_at
from invalidator.operators._redrive import (
    DeadLetter,
    Original,
    SourcePosition,
    originals,
    read_dead_letter,
)
from invalidator.operators._window import (
    add_window_options,
    check_window_options,
    read_window,
    selected_bounds,
    window_of,
)
from invalidator.planner import purge_plan
from invalidator.settings import InvalidatorSettings

_REQUEST_OVERHEAD = 64 * 1024
_DETAIL_SHOWN = 60


def add_dead_letter_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `dead-letters show` and `dead-letters redrive`."""
    dead_letters = commands.add_parser(
        "dead-letters", help="read the dead-letter topic back; re-publish its original records"
    )
    actions = dead_letters.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="each original record once: reason, source, groups")
    add_window_options(show, required=False)
    redrive = actions.add_parser(
        "redrive", help="re-publish original records to their topic (dry run unless --execute)"
    )
    add_window_options(redrive, required=True)
    redrive.add_argument("--execute", action="store_true", help="publish (default: dry run)")
    for parser in (show, redrive):
        parser.add_argument(
            "--reason",
            metavar="REASON",
            help=f"only dead letters with this reason: {', '.join(DEAD_LETTER_REASONS)}",
        )
        parser.add_argument("--group", help="only dead letters of this group (invalidator.eu)")
        add_catalogue_option(parser)
        add_json_option(parser)
    # Dead letters can be read with a broken catalogue, or none: only a redrive judges by one.
    set_handler(show, on_settings(show_dead_letters))
    set_handler(redrive, on_catalogue(redrive_dead_letters))


async def show_dead_letters(args: argparse.Namespace, settings: InvalidatorSettings) -> int:
    """`dead-letters show`: each original event of the window once; returns the exit status."""
    check_selection(args, settings)
    letters, unreadable = await _read_dead_letters(args, settings)
    selected = originals(letters, reason=args.reason, group=args.group)
    return _show(args, settings, selected, len(letters), unreadable)


async def redrive_dead_letters(
    args: argparse.Namespace, settings: InvalidatorSettings, catalogue: Catalogue
) -> int:
    """`dead-letters redrive`: re-publish the window's original records (a dry run unless
    --execute), judged by `catalogue`; returns the exit status."""
    check_selection(args, settings)
    letters, _ = await _read_dead_letters(args, settings)
    selected = originals(letters, reason=args.reason, group=args.group)
    return await _redrive(args, settings, selected, catalogue)


def check_selection(args: argparse.Namespace, settings: InvalidatorSettings) -> None:
    """Refuse, with an OperatorInputError naming the option, a selection that cannot mean
    anything: a window that cannot be one, a reason no dead letter carries, a group of no
    configured region. Checked before anything is read or published."""
    check_window_options(args)
    if args.reason is not None and args.reason not in DEAD_LETTER_REASONS:
        close = difflib.get_close_matches(args.reason, DEAD_LETTER_REASONS, n=1)
        raise OperatorInputError(
            f"--reason {args.reason!r} is not a dead-letter reason"
            + (f" (did you mean {close[0]!r}?)" if close else "")
            + f"; the reasons are: {', '.join(DEAD_LETTER_REASONS)}"
        )
    groups = sorted(settings.group_id(region) for region in settings.regions)
    if args.group is not None and args.group not in groups:
        raise OperatorInputError(
            f"--group {args.group!r} is the group of no configured region; INVALIDATOR_REGIONS "
            f"and INVALIDATOR_GROUP_PREFIX={settings.group_prefix} give: "
            f"{', '.join(groups) or 'none'}"
        )


async def _read_dead_letters(
    args: argparse.Namespace, settings: InvalidatorSettings
) -> tuple[list[DeadLetter], int]:
    """The dead letters of the window, and how many records there were not dead letters."""
    bounds = await selected_bounds(args, settings.kafka, [settings.dead_letter_topic])
    window = await window_of(args, settings.kafka, bounds)
    letters: list[DeadLetter] = []
    unreadable = 0
    async for records in read_window(settings.kafka, window):
        for record in records:
            letter = read_dead_letter(record)
            if letter is None:
                unreadable += 1
            else:
                letters.append(letter)
    return letters, unreadable


def _show(
    args: argparse.Namespace,
    settings: InvalidatorSettings,
    selected: list[Original],
    letters: int,
    unreadable: int,
) -> int:
    rows = [_described(original) for original in selected]
    copies = sum(len(original.letters) for original in selected)
    report = {
        "topic": settings.dead_letter_topic,
        "dead_letters_read": letters,
        "dead_letters_selected": copies,
        "not_dead_letters": unreadable,
        "originals": rows,
    }
    lines = [
        table(
            [*_LETTER_HEADERS, "SIZE", "EVENT TYPE", "EVENT ID", "DETAIL"],
            [
                [
                    *_letter_cells(r),
                    r["size"],
                    r["event_type"],
                    r["event_id"],
                    _shortened(r["detail"]),
                ]
                for r in rows
            ],
        ),
        f"{copies} dead letters of {settings.dead_letter_topic} -> {len(rows)} original events "
        f"({_ONCE_PER_EVENT}; each is shown once)"
        + (f"; {unreadable} records there are not dead letters" if unreadable else ""),
    ]
    emit(args, report, "\n".join(lines))
    return EXIT_OK


def _described(original: Original) -> dict[str, Any]:
    letter = original.carrier
    size = letter.size if letter.size is not None else len(letter.value or b"")
    return {
        "source": str(original.source),
        "topic": original.source.topic,
        "partition": original.source.partition,
        "offset": original.source.offset,
        "sources": [str(position) for position in original.sources],
        "reasons": original.reasons,
        "detail": letter.detail,
        "groups": original.groups,
        "form": letter.form,
        "size": size,
        "event_type": letter.event_type,
        "event_id": letter.event_id,
        "dead_lettered_at": iso_time(min(copy.timestamp_ms for copy in original.letters)),
        "dead_letter_offsets": [list(copy.at) for copy in original.letters],
    }


_ONCE_PER_EVENT = (
    "each region's group writes its own copy, and an event redriven and rejected again is "
    "dead-lettered again: letters are matched by event id"
)
"""Why there are more dead letters than events, said by `show` and `redrive`."""

_LETTER_HEADERS = ["SOURCE", "REASON", "GROUPS", "FORM"]
"""The columns `show` and `redrive` both begin with: where the original was, why and by which
groups it was dead-lettered, and whether the letter holds it whole or references it."""


def _letter_cells(row: dict[str, Any]) -> list[Any]:
    """A row's cells under `_LETTER_HEADERS`."""
    return [row["source"], ",".join(row["reasons"]), ",".join(row["groups"]), row["form"]]


def _shortened(text: str) -> str:
    return text if len(text) <= _DETAIL_SHOWN else text[: _DETAIL_SHOWN - 3] + "..."


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """An original record as it will be re-published, or why it cannot be."""

    original: Original
    key: bytes | None = None
    value: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    gone: bool = False
    """A reference whose record is no longer in the source log (retention)."""


async def _redrive(
    args: argparse.Namespace,
    settings: InvalidatorSettings,
    selected: list[Original],
    catalogue: Catalogue,
) -> int:
    outgoing = await _resolved(settings, selected)
    rows = [_redrive_row(item, catalogue) for item in outgoing]
    ready = [item for item in outgoing if not item.gone]
    gone = len(outgoing) - len(ready)
    copies = sum(len(original.letters) for original in selected)
    report: dict[str, Any] = {
        "topic": settings.dead_letter_topic,
        "dead_letters_selected": copies,
        "catalogue": settings.catalogue,
        "originals": len(outgoing),
        "gone": gone,
        "executed": False,
        "records": rows,
    }
    summary = (
        f"{copies} dead letters -> {len(outgoing)} original events ({_ONCE_PER_EVENT}; each is "
        "re-published once)"
        + (f"; {gone} are no longer in their source log and are not re-published" if gone else "")
    )
    text = [
        table(
            [*_LETTER_HEADERS, "DECODES NOW", "NOTE"],
            [[*_letter_cells(r), r["decodes_now"], r["note"]] for r in rows],
        ),
        summary,
        f"DECODES NOW is judged by catalogue {settings.catalogue}, the one this command loaded: "
        "invalidators still running an older catalogue dead-letter what it cannot decode again.",
    ]
    if not args.execute:
        emit(
            args,
            report,
            "\n".join(
                [
                    *text,
                    f"Dry run: would re-publish {len(ready)} records; nothing was published. "
                    "Add --execute to publish.",
                ]
            ),
        )
        return EXIT_OK
    failed = await _publish(settings, ready)
    report["executed"] = True
    report["published"] = len(ready) - len(failed)
    report["failed"] = [str(position) for position in failed]
    done = f"Re-published {len(ready) - len(failed)} records to their source topics." + (
        f" FAILED: {', '.join(str(p) for p in failed)}" if failed else ""
    )
    emit(args, report, "\n".join([*text, done]))
    return EXIT_REFUSED if failed else EXIT_OK


async def _resolved(settings: InvalidatorSettings, selected: list[Original]) -> list[_Outgoing]:
    """Each original with its record: from its letter, or read from its source position."""
    references = [o.source for o in selected if o.carrier.by_reference]
    fetched = await _source_records(settings, references) if references else {}
    resolved = []
    for original in selected:
        letter = original.carrier
        if not letter.by_reference:
            resolved.append(_Outgoing(original, letter.key, letter.value, letter.headers))
        elif (record := fetched.get(original.source)) is None:
            resolved.append(_Outgoing(original, gone=True))
        else:
            resolved.append(
                _Outgoing(original, record.key, record.value, tuple(record.headers or ()))
            )
    return resolved


async def _source_records(
    settings: InvalidatorSettings, positions: list[SourcePosition]
) -> dict[SourcePosition, ConsumerRecord[bytes, bytes]]:
    """The records at `positions` still in their log (absent: deleted by retention)."""
    bounds = await log_bounds(settings.kafka, sorted({p.topic for p in positions}))
    wanted = {}
    for position in positions:
        tp = TopicPartition(position.topic, position.partition)
        start, end = bounds[tp]
        if start <= position.offset < end:
            wanted[position] = tp
    found = await records_at(settings.kafka, [(tp, p.offset) for p, tp in wanted.items()])
    return {
        p: record
        for p, tp in wanted.items()
        if (record := found[(tp, p.offset)]) is not None and record.offset == p.offset
    }


def _redrive_row(item: _Outgoing, catalogue: Catalogue) -> dict[str, Any]:
    original = item.original
    return {
        "source": str(original.source),
        "topic": original.source.topic,
        "partition": original.source.partition,
        "offset": original.source.offset,
        "sources": [str(position) for position in original.sources],
        "reasons": original.reasons,
        "groups": original.groups,
        "form": original.carrier.form,
        "decodes_now": None if item.gone else _decodes_now(item, catalogue),
        "note": "no longer in the source log (retention)" if item.gone else "",
    }


def _decodes_now(item: _Outgoing, catalogue: Catalogue) -> str:
    """`yes` when the catalogue in use now decodes and plans the record, else the reason."""
    decoded = catalogue.schemas.decode(item.value, item.headers)
    if isinstance(decoded, Rejected):
        return decoded.reason.value
    unplannable = RejectReason.UNPLANNABLE.value
    return unplannable if purge_plan([(0, decoded)], catalogue).unplannable else "yes"


async def _publish(settings: InvalidatorSettings, ready: list[_Outgoing]) -> list[SourcePosition]:
    """Publish every record to its source topic (idempotent, acks=all); returns the failures."""
    largest = max((len(item.value or b"") + len(item.key or b"") for item in ready), default=0)
    producer = idempotent_producer(
        settings.kafka,
        client_id="invalidator.redrive",
        # A record dead-lettered as a reference may be larger than the client's 1 MiB default;
        # its topic accepted it once, so the broker's limit is the one that applies.
        max_request_size=max(DEFAULT_MAX_REQUEST_BYTES, largest + _REQUEST_OVERHEAD),
    )
    await producer.start()
    failed: list[SourcePosition] = []
    sent: list[tuple[SourcePosition, asyncio.Future[Any]]] = []
    try:
        for item in ready:
            try:
                future = await producer.send(
                    item.original.source.topic,
                    value=item.value,
                    key=item.key,
                    headers=list(item.headers),
                )
            except KafkaError:
                failed.append(item.original.source)
            else:
                sent.append((item.original.source, future))
        results = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
    finally:
        await producer.stop()
    failed.extend(
        position
        for (position, _), result in zip(sent, results, strict=True)
        if isinstance(result, BaseException)
    )
    return sorted(failed)
