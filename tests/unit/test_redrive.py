"""Dead letters read back: parsing the headers, selecting, one original per source position."""

from __future__ import annotations

from aiokafka import ConsumerRecord

from invalidator.operators._redrive import DeadLetter, SourcePosition, originals, read_dead_letter


def _original_headers(event_id: str) -> list[tuple[str, bytes]]:
    return [("event-type", b"orders.OrderCreated"), ("event-id", event_id.encode())]


def _letter(
    *,
    offset: int,
    group: str,
    reason: str = "unknown_type",
    at: int = 0,
    extra: tuple[tuple[str, bytes], ...] = (),
    value: bytes | None = b'{"type": "orders.Nope"}',
    event_id: str | None = None,
    topic: str = "orders.events",
) -> ConsumerRecord[bytes, bytes]:
    """A dead letter of the record at `offset`, whose event id is `e-<offset>` unless given."""
    headers = [
        *_original_headers(event_id or f"e-{offset}"),
        ("dlq-reason", reason.encode()),
        ("dlq-detail", b"not in this consumer's catalogue"),
        ("dlq-topic", topic.encode()),
        ("dlq-partition", b"2"),
        ("dlq-offset", str(offset).encode()),
        ("dlq-group", group.encode()),
        *extra,
    ]
    return ConsumerRecord(
        "invalidator.dead-letter", 0, at, 1_700_000_000_000, 0, b"order:o-1", value, None, 8,
        len(value or b""), headers,
    )  # fmt: skip


def test_a_letter_says_where_its_original_was_and_keeps_only_the_original_headers() -> None:
    letter = read_dead_letter(_letter(offset=41, group="invalidator.eu", at=7))
    assert letter is not None
    assert letter.source == SourcePosition("orders.events", 2, 41)
    assert (letter.reason, letter.group, letter.at) == ("unknown_type", "invalidator.eu", (0, 7))
    assert letter.headers == tuple(_original_headers("e-41"))
    assert (letter.event_type, letter.event_id) == ("orders.OrderCreated", "e-41")
    assert (letter.key, letter.by_reference, letter.size) == (b"order:o-1", False, None)


def test_the_event_type_and_id_come_from_the_body_when_the_headers_lack_them() -> None:
    record = _letter(offset=1, group="g", value=b'{"type": "x.Y", "event_id": "e-9"}')
    record.headers = [(k, v) for k, v in record.headers if k not in ("event-type", "event-id")]
    letter = read_dead_letter(record)
    assert letter is not None and (letter.event_type, letter.event_id) == ("x.Y", "e-9")
    not_json = _letter(offset=1, group="g", value=b"\xff not json")
    not_json.headers = record.headers
    found = read_dead_letter(not_json)
    assert found is not None and (found.event_type, found.event_id) == (None, None)


def test_a_reference_letter_carries_no_value_and_says_the_original_size() -> None:
    record = _letter(
        offset=3, group="g", extra=(("dlq-form", b"reference"), ("dlq-size", b"1048450"))
    )
    letter = read_dead_letter(record)
    assert letter is not None
    assert (letter.by_reference, letter.size, letter.value) == (True, 1048450, None)
    assert letter.form == "reference"
    whole = read_dead_letter(_letter(offset=3, group="g", extra=(("dlq-form", b"whole"),)))
    assert whole is not None and (whole.by_reference, whole.form) == (False, "whole")


def test_records_without_a_source_position_are_not_dead_letters() -> None:
    record = _letter(offset=1, group="g")
    record.headers = [(k, v) for k, v in record.headers if k != "dlq-offset"]
    assert read_dead_letter(record) is None
    garbled = _letter(offset=1, group="g")
    garbled.headers = [(k, b"x" if k == "dlq-partition" else v) for k, v in garbled.headers]
    assert read_dead_letter(garbled) is None


def _parsed(record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
    letter = read_dead_letter(record)
    assert letter is not None
    return letter


def _letters() -> list[DeadLetter]:
    return [
        _parsed(_letter(offset=9, group="invalidator.eu", at=0)),
        _parsed(_letter(offset=5, group="invalidator.eu", reason="malformed", at=1)),
        _parsed(_letter(offset=9, group="invalidator.us", at=2)),
        _parsed(_letter(offset=5, group="invalidator.us", reason="malformed", at=3)),
        _parsed(_letter(offset=7, group="invalidator.us", at=4)),
    ]


def test_each_original_is_selected_once_whatever_the_number_of_groups_in_source_order() -> None:
    found = originals(_letters())
    assert [o.source.offset for o in found] == [5, 7, 9]
    assert [o.groups for o in found] == [
        ["invalidator.eu", "invalidator.us"],
        ["invalidator.us"],
        ["invalidator.eu", "invalidator.us"],
    ]
    assert [len(o.letters) for o in found] == [2, 1, 2]


def test_reason_and_group_narrow_the_selection() -> None:
    assert [o.source.offset for o in originals(_letters(), reason="malformed")] == [5]
    eu = originals(_letters(), group="invalidator.eu")
    assert [(o.source.offset, o.groups) for o in eu] == [
        (5, ["invalidator.eu"]),
        (9, ["invalidator.eu"]),
    ]
    both = originals(_letters(), reason="unknown_type", group="invalidator.us")
    assert [o.source.offset for o in both] == [7, 9]
    assert originals(_letters(), reason="too_large") == []


def test_a_whole_copy_is_preferred_to_a_reference_copy() -> None:
    reference = _parsed(
        _letter(offset=4, group="invalidator.eu", extra=(("dlq-form", b"reference"),))
    )
    whole = _parsed(_letter(offset=4, group="invalidator.us"))
    (original,) = originals([reference, whole])
    assert original.carrier is whole
    (only_reference,) = originals([reference])
    assert only_reference.carrier is reference


def _dead_lettered(offset: int, event_id: str) -> list[DeadLetter]:
    """The letters both regions' groups write for the record at `offset`."""
    return [
        _parsed(_letter(offset=offset, group=group, event_id=event_id))
        for group in ("invalidator.eu", "invalidator.us")
    ]


def test_an_event_redriven_and_dead_lettered_again_is_selected_once() -> None:
    # Published at offset 5; redriven to offset 20 and 40, dead-lettered by both groups each time.
    letters = [*_dead_lettered(20, "e-1"), *_dead_lettered(5, "e-1"), *_dead_lettered(40, "e-1")]
    (original,) = originals(letters)
    assert [p.offset for p in original.sources] == [5, 20, 40]
    assert original.source.offset == 5
    assert len(original.letters) == 6
    assert original.groups == ["invalidator.eu", "invalidator.us"]


def test_redrives_of_twenty_events_select_twenty_however_often_they_were_redriven() -> None:
    first = [letter for i in range(20) for letter in _dead_lettered(i, f"e-{i}")]
    # A redrive selecting by position would have re-published the originals and the copies.
    copies = [letter for i in range(20) for letter in _dead_lettered(20 + i, f"e-{i}")]
    again = [letter for i in range(40) for letter in _dead_lettered(40 + i, f"e-{i % 20}")]
    for window in (first, first + copies, first + copies + again):
        found = originals(window)
        assert [o.carrier.event_id for o in found] == [f"e-{i}" for i in range(20)]
        assert [o.source.offset for o in found] == list(range(20))


def test_without_an_event_id_a_copy_is_known_by_its_content() -> None:
    def no_id(offset: int, value: bytes) -> DeadLetter:
        record = _letter(offset=offset, group="invalidator.eu", value=value)
        record.headers = [(k, v) for k, v in record.headers if k != "event-id"]
        return _parsed(record)

    found = originals([no_id(3, b"not json"), no_id(30, b"not json"), no_id(4, b"other")])
    assert [[p.offset for p in o.sources] for o in found] == [[3, 30], [4]]


def test_a_reference_letter_without_an_event_id_is_known_by_its_position() -> None:
    def reference(offset: int) -> DeadLetter:
        record = _letter(offset=offset, group="invalidator.eu", extra=(("dlq-form", b"reference"),))
        record.headers = [(k, v) for k, v in record.headers if k != "event-id"]
        return _parsed(record)

    assert [o.source.offset for o in originals([reference(8), reference(2)])] == [2, 8]
