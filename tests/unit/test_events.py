"""The envelope, its wire form, and every decoding outcome."""

from __future__ import annotations

import json
import uuid

import pytest
from pydantic import ValidationError

from contracts import Event, EventEnvelope, Rejected, RejectReason
from contracts.events import HEADER_EVENT_TYPE, HEADER_SCHEMA_VERSION
from contracts.example_orders import CATALOGUE, OrderCreated, OrderCreatedV1, OrderUpdated


def _envelope(**overrides: object) -> EventEnvelope:
    event = OrderCreated(order_id="o-1", company_id="c-1", total_cents=100)
    envelope = EventEnvelope.wrap(event, source="orders-api", tenant="acme", aggregate_version=3)
    return envelope.model_copy(update=overrides)


def test_envelope_carries_type_version_and_aggregate() -> None:
    envelope = _envelope()
    assert envelope.type == "orders.OrderCreated"
    assert envelope.schema_version == 2
    assert (envelope.aggregate_type, envelope.aggregate_id) == ("order", "o-1")
    assert envelope.headers()[HEADER_EVENT_TYPE] == "orders.OrderCreated"
    assert envelope.headers()[HEADER_SCHEMA_VERSION] == "2"
    assert envelope.partition_key() == b"order:o-1"


def test_round_trip_decodes_the_typed_payload() -> None:
    envelope = _envelope()
    decoded = CATALOGUE.schemas.decode(envelope.to_bytes())
    assert isinstance(decoded, Event)
    assert decoded.envelope == envelope
    assert decoded.payload == OrderCreated(order_id="o-1", company_id="c-1", total_cents=100)


def test_ids_in_events_are_validated_at_build_time() -> None:
    with pytest.raises(ValidationError, match="company_id"):
        OrderCreated(order_id="o-1", company_id="c*", total_cents=1)


def _raw(envelope: EventEnvelope, **changes: object) -> bytes:
    body = json.loads(envelope.to_bytes())
    body.update(changes)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("value", "reason", "fragment"),
    [
        (None, RejectReason.MALFORMED, "no value"),
        (b"not json", RejectReason.MALFORMED, "envelope"),
        (b"{}", RejectReason.MALFORMED, "event_id"),
    ],
)
def test_undecodable_records_are_rejected_with_a_reason(
    value: bytes | None, reason: RejectReason, fragment: str
) -> None:
    outcome = CATALOGUE.schemas.decode(value)
    assert isinstance(outcome, Rejected)
    assert outcome.reason is reason
    assert fragment in outcome.detail


def test_unknown_type_newer_version_and_bad_payload_are_distinct_outcomes() -> None:
    envelope = _envelope()
    unknown = CATALOGUE.schemas.decode(_raw(envelope, type="billing.InvoicePaid"))
    newer = CATALOGUE.schemas.decode(_raw(envelope, schema_version=7))
    bad_payload = CATALOGUE.schemas.decode(_raw(envelope, payload={"order_id": "o-1"}))
    moved_aggregate = CATALOGUE.schemas.decode(_raw(envelope, aggregate_id="o-2"))
    assert isinstance(unknown, Rejected) and unknown.reason is RejectReason.UNKNOWN_TYPE
    assert isinstance(newer, Rejected) and newer.reason is RejectReason.NEWER_VERSION
    assert newer.event_type == "orders.OrderCreated" and newer.schema_version == 7
    assert isinstance(bad_payload, Rejected) and bad_payload.reason is RejectReason.MALFORMED
    assert "company_id" in bad_payload.detail
    assert isinstance(moved_aggregate, Rejected) and "aggregate_id" in moved_aggregate.detail


def test_glob_in_envelope_tenant_is_malformed() -> None:
    outcome = CATALOGUE.schemas.decode(_raw(_envelope(), tenant="ac*me"))
    assert isinstance(outcome, Rejected) and outcome.reason is RejectReason.MALFORMED
    assert "tenant" in outcome.detail


def test_event_ids_are_unique_per_wrap() -> None:
    event = OrderUpdated(order_id="o", company_id="c", total_cents=1)
    ids = {
        EventEnvelope.wrap(event, source="s", tenant="t", aggregate_version=1).event_id
        for _ in range(100)
    }
    assert len(ids) == 100
    fixed = uuid.uuid4()
    assert (
        EventEnvelope.wrap(
            event, source="s", tenant="t", aggregate_version=1, event_id=fixed
        ).event_id
        == fixed
    )


def _headers(envelope: EventEnvelope) -> list[tuple[str, bytes]]:
    return [(name, value.encode()) for name, value in envelope.headers().items()]


def test_headers_pick_the_typed_envelope_and_give_the_same_event() -> None:
    envelope = _envelope()
    fast = CATALOGUE.schemas.decode(envelope.to_bytes(), _headers(envelope))
    slow = CATALOGUE.schemas.decode(envelope.to_bytes())
    assert isinstance(fast, Event) and isinstance(slow, Event)
    assert fast.payload == slow.payload
    assert fast.envelope.model_dump(exclude={"payload"}) == envelope.model_dump(exclude={"payload"})


def test_the_body_wins_when_the_headers_name_another_type() -> None:
    envelope = _envelope()
    lying = [(HEADER_EVENT_TYPE, b"orders.OrderCancelled"), (HEADER_SCHEMA_VERSION, b"1")]
    decoded = CATALOGUE.schemas.decode(envelope.to_bytes(), lying)
    assert isinstance(decoded, Event) and isinstance(decoded.payload, OrderCreated)
    bad = CATALOGUE.schemas.decode(_raw(envelope, tenant="ac*me"), _headers(envelope))
    assert isinstance(bad, Rejected) and "tenant" in bad.detail


def test_with_headers_an_aggregate_id_that_differs_from_the_payloads_is_malformed() -> None:
    envelope = _envelope()
    moved = CATALOGUE.schemas.decode(_raw(envelope, aggregate_id="o-2"), _headers(envelope))
    assert isinstance(moved, Rejected) and moved.reason is RejectReason.MALFORMED
    assert "aggregate_id" in moved.detail


def test_with_headers_an_older_version_is_upcast() -> None:
    old = OrderCreatedV1(order_id="o-1", company_id="c-1", total_cents=100)
    envelope = EventEnvelope.wrap(old, source="orders-api", tenant="acme", aggregate_version=1)
    decoded = CATALOGUE.schemas.decode(envelope.to_bytes(), _headers(envelope))
    assert isinstance(decoded, Event) and isinstance(decoded.payload, OrderCreated)
    assert decoded.envelope.schema_version == 1
