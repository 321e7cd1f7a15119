"""Dead letters read back: parsing the headers, selecting, one original per source position."""

from __future__ import annotations

from aiokafka import ConsumerRecord

from invalidator.operators._redrive import DeadLetter, SourcePosition, originals, read_dead_letter

ORIGINAL_HEADERS = [("event-type", b"orders.OrderCreated"), ("event-id", b"e-1")]


def _letter(
    *,
    offset: int,
    group: str,
    reason: str = "unknown_type",
    at: int = 0,
    extra: tuple[tuple[str, bytes], ...] = (),
    value: bytes | None = b'{"type": "orders.Nope"}',
) -> ConsumerRecord[bytes, bytes]:
    headers = [
        *ORIGINAL_HEADERS,
        ("dlq-reason", reason.encode()),
        ("dlq-detail", b"not in this consumer's catalogue"),
        ("dlq-topic", b"orders.events"),
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
    assert letter.headers == tuple(ORIGINAL_HEADERS)
    assert (letter.event_type, letter.event_id) == ("orders.OrderCreated", "e-1")
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
