"""Dead letters read back, pure: what each one says, and the original events they carry.

One event can have many dead letters: each region's group writes its own copy (header
`dlq-group`), and an event that was redriven and rejected again (invalidators still running the
old catalogue) is dead-lettered again from its new source position. So the originals are the
dead letters grouped by the event's id (`event-id` header, else the body's `event_id`); a letter
whose event has no readable id is grouped by its content, and a reference letter without one by
its source position. A redrive re-publishes each original once, however often it was
dead-lettered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiokafka import ConsumerRecord

from contracts.events import HEADER_EVENT_ID, HEADER_EVENT_TYPE
from invalidator.deadletter import (
    FORM_REFERENCE,
    FORM_WHOLE,
    HEADER_DETAIL,
    HEADER_FORM,
    HEADER_GROUP,
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_REASON,
    HEADER_SIZE,
    HEADER_TOPIC,
)

DEAD_LETTER_HEADER_PREFIX = "dlq-"
"""Every header the dead-letter path adds starts so; a redrive sends the others unchanged."""


@dataclass(frozen=True, slots=True, order=True)
class SourcePosition:
    """Where the original record was read: its topic, partition and offset."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead letter as read back from the dead-letter topic."""

    source: SourcePosition
    reason: str
    detail: str
    group: str
    by_reference: bool
    """True when the letter does not carry the original value (too large to forward whole)."""
    size: int | None
    """The original value's size in bytes (None when the letter does not say)."""
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    """The original record's headers (those of the dead-letter path removed)."""
    at: tuple[int, int]
    """Its own partition and offset on the dead-letter topic."""
    timestamp_ms: int
    """When it was dead-lettered."""

    @property
    def form(self) -> str:
        """`whole` or `reference`, as the `dlq-form` header says."""
        return FORM_REFERENCE if self.by_reference else FORM_WHOLE

    @property
    def event_type(self) -> str | None:
        """The original's event type: its header, else its body's `type`, else None."""
        return _header(self.headers, HEADER_EVENT_TYPE) or _body_field(self.value, "type")

    @property
    def event_id(self) -> str | None:
        """The original's event id: its header, else its body's `event_id`, else None."""
        return _header(self.headers, HEADER_EVENT_ID) or _body_field(self.value, "event_id")


def read_dead_letter(record: ConsumerRecord[bytes, bytes]) -> DeadLetter | None:
    """The dead letter in `record`, or None when its position headers are missing or garbled."""
    ours = {
        name: raw.decode(errors="replace")
        for name, raw in record.headers or ()
        if name.startswith(DEAD_LETTER_HEADER_PREFIX)
    }
    try:
        source = SourcePosition(
            ours[HEADER_TOPIC], int(ours[HEADER_PARTITION]), int(ours[HEADER_OFFSET])
        )
    except (KeyError, ValueError):
        return None
    by_reference, size = _form_and_size(ours)
    return DeadLetter(
        source=source,
        reason=ours.get(HEADER_REASON, "?"),
        detail=ours.get(HEADER_DETAIL, ""),
        group=ours.get(HEADER_GROUP, "?"),
        by_reference=by_reference,
        size=size,
        key=record.key,
        value=None if by_reference else record.value,
        headers=tuple(
            (name, raw)
            for name, raw in record.headers or ()
            if not name.startswith(DEAD_LETTER_HEADER_PREFIX)
        ),
        at=(record.partition, record.offset),
        timestamp_ms=record.timestamp,
    )


def _form_and_size(ours: dict[str, str]) -> tuple[bool, int | None]:
    by_reference = ours.get(HEADER_FORM) == FORM_REFERENCE
    size_text = ours.get(HEADER_SIZE)
    size = int(size_text) if size_text is not None and size_text.isdigit() else None
    return by_reference, size


@dataclass(frozen=True, slots=True)
class Original:
    """An original event and every dead letter that carries it: one per group that rejected
    it, for each time it was published (first, and after each redrive rejected again)."""

    letters: tuple[DeadLetter, ...]
    """In source order: the first publication's letters first."""

    @property
    def carrier(self) -> DeadLetter:
        """The letter to re-publish from: the earliest that carries the value whole, if any
        does, else the earliest."""
        return next((letter for letter in self.letters if not letter.by_reference), self.letters[0])

    @property
    def source(self) -> SourcePosition:
        """Where the carrier's record was read (a reference letter's record is read there)."""
        return self.carrier.source

    @property
    def sources(self) -> list[SourcePosition]:
        """Every position the event was dead-lettered from (more than one once redriven)."""
        return sorted({letter.source for letter in self.letters})

    @property
    def groups(self) -> list[str]:
        """The groups that dead-lettered it."""
        return sorted({letter.group for letter in self.letters})

    @property
    def reasons(self) -> list[str]:
        """Why, as the groups said it (usually one reason)."""
        return sorted({letter.reason for letter in self.letters})


def originals(
    letters: Iterable[DeadLetter], *, reason: str | None = None, group: str | None = None
) -> list[Original]:
    """The original events of the letters that match, each once, in source order.

    letters: dead letters in the order read.
    reason: keep only letters with this `dlq-reason` (None: all).
    group: keep only letters written by this group (None: all).
    Ordered by each event's first source position, so that events of one partition are
    re-published in their original order (events of one aggregate stay in order).
    """
    by_event: dict[tuple[str, str], list[DeadLetter]] = {}
    for letter in letters:
        if reason is not None and letter.reason != reason:
            continue
        if group is not None and letter.group != group:
            continue
        by_event.setdefault(event_identity(letter), []).append(letter)
    found = [Original(tuple(sorted(event, key=_source_order))) for event in by_event.values()]
    return sorted(found, key=lambda original: original.sources[0])


def event_identity(letter: DeadLetter) -> tuple[str, str]:
    """What makes two dead letters carry the same event: its id; without one, the record's
    content (a redrive re-publishes key, value and headers unchanged); for a reference letter
    without one, its source position."""
    if letter.event_id is not None:
        return ("event-id", letter.event_id)
    if not letter.by_reference:
        content = repr((letter.source.topic, letter.key, letter.value, letter.headers))
        return ("content", hashlib.sha256(content.encode()).hexdigest())
    return ("position", str(letter.source))


def _source_order(letter: DeadLetter) -> tuple[SourcePosition, tuple[int, int]]:
    return letter.source, letter.at


def _header(headers: Sequence[tuple[str, bytes]], name: str) -> str | None:
    found = next((raw for key, raw in headers if key == name), None)
    return None if found is None else found.decode(errors="replace")


def _body_field(value: bytes | None, name: str) -> str | None:
    if not value:
        return None
    try:
        body = json.loads(value)
    except ValueError:
        return None
    field = body.get(name) if isinstance(body, dict) else None
    return field if isinstance(field, str) else None
