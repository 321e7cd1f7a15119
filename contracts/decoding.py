"""Decoding Kafka records into typed events, with a distinct outcome for every failure."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from contracts.events import (
    HEADER_EVENT_TYPE,
    HEADER_SCHEMA_VERSION,
    DomainEvent,
    Event,
    EventEnvelope,
    EventMetadata,
    typed_envelope,
)

RecordHeaders = Sequence[tuple[str, bytes]]


class RejectReason(enum.StrEnum):
    """Why a record goes to the dead-letter topic (its `dlq-reason` header): every reason, the
    decoder's and the invalidator's. Each one is handled, none is dropped; `description` says
    what it means (the dead-letter documentation is generated from it)."""

    MALFORMED = "malformed"
    UNKNOWN_TYPE = "unknown_type"
    NEWER_VERSION = "newer_version"
    UPCAST_FAILED = "upcast_failed"
    DECODE_FAILED = "decode_failed"
    UNPLANNABLE = "unplannable"
    PURGE_REFUSED = "purge_refused"

    @property
    def description(self) -> str:
        """What the reason means, in words."""
        return _REJECT_REASON_DESCRIPTIONS[self]


_REJECT_REASON_DESCRIPTIONS = {
    RejectReason.MALFORMED: "not JSON, not a valid envelope, or a payload that fails its schema",
    RejectReason.UNKNOWN_TYPE: "a well-formed envelope whose event type the consumer does not know",
    RejectReason.NEWER_VERSION: "a known event type at a schema version newer than the consumer"
    " knows",
    RejectReason.UPCAST_FAILED: "a known older version whose `upcast()` raised: a defect in the"
    " contracts' code (fix it, then redrive the dead letters)",
    RejectReason.DECODE_FAILED: "decoding raised (a defect in a validator or the decoding code)",
    RejectReason.UNPLANNABLE: "no key can be rendered from the event (a field breaks a"
    " namespace's parameter rules)",
    RejectReason.PURGE_REFUSED: "Redis refused a namespace the event purges (WRONGTYPE: a key of"
    " the namespace holds another type)",
}


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that did not decode; `detail` says why in words for the dead-letter topic."""

    reason: RejectReason
    detail: str
    event_type: str | None = None
    schema_version: int | None = None


def _validation_summary(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "<root>"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class _TypedEnvelope:
    """The fast path's view of one (type, version): its typed envelope's validator."""

    validate_json: Callable[[bytes], Any]
    """pydantic-core's validator of the typed envelope (what `model_validate_json` calls)."""
    latest: bool
    """Whether this is the newest version the consumer knows (no upcast)."""
    aggregate_id_field: str
    """The payload field that must equal the envelope's `aggregate_id`."""


class EventSchemas:
    """The event types a consumer knows: (type, schema_version) -> payload model."""

    def __init__(self, models: Iterable[type[DomainEvent]]) -> None:
        """models: every payload model, one per (event_type, schema_version)."""
        by_key: dict[tuple[str, int], type[DomainEvent]] = {}
        for model in models:
            key = (model.event_type, model.schema_version)
            if key in by_key and by_key[key] is not model:
                raise ValueError(f"two payload models for {key[0]} v{key[1]}")
            by_key[key] = model
        self._by_key: Mapping[tuple[str, int], type[DomainEvent]] = by_key
        self._latest = {t: max(v for (tt, v) in by_key if tt == t) for (t, _) in by_key}
        # Keyed by the raw header values, so that the fast path decodes no header.
        self._typed_by_headers: Mapping[tuple[bytes | None, bytes | None], _TypedEnvelope] = {
            (t.encode(), str(v).encode()): _TypedEnvelope(
                typed_envelope(model).__pydantic_validator__.validate_json,
                latest=v == self._latest[t],
                aggregate_id_field=model.aggregate_id_field,
            )
            for (t, v), model in by_key.items()
        }

    def models(self) -> list[type[DomainEvent]]:
        """Every known payload model, every version."""
        return list(self._by_key.values())

    def latest(self, event_type: str) -> type[DomainEvent] | None:
        """The newest known model of `event_type`."""
        version = self._latest.get(event_type)
        return None if version is None else self._by_key[(event_type, version)]

    def decode(self, value: bytes | None, headers: RecordHeaders = ()) -> Event | Rejected:
        """Decode one record value.

        value: the Kafka record value (JSON envelope); None (a tombstone) is malformed.
        headers: the record's headers. When they name a known type and version, the record is
            validated in one pass against that type's envelope; the body stays the truth (a
            record whose headers disagree with its body is decoded by its body).
        """
        if value is None:
            return Rejected(RejectReason.MALFORMED, "record has no value")
        typed = self._typed_by_headers.get(_type_and_version(headers))
        if typed is not None:
            try:
                envelope = typed.validate_json(value)
            except ValidationError:
                pass  # the step-by-step path below names what is wrong
            else:
                payload: DomainEvent = envelope.payload
                # The newest version, its aggregate id the envelope's: nothing to upcast or
                # check. (An id field that is not a string compares unequal here; `_upcast`
                # compares its text.)
                if (
                    typed.latest
                    and getattr(payload, typed.aggregate_id_field) == envelope.aggregate_id
                ):
                    return Event(envelope, payload)
                return self._upcast(envelope, payload)
        return self._decode_in_steps(value)

    def _decode_in_steps(self, value: bytes) -> Event | Rejected:
        """Envelope first, then type and version, then payload: each failure its own reason."""
        try:
            envelope = EventEnvelope.model_validate_json(value)
        except ValidationError as error:
            return Rejected(RejectReason.MALFORMED, f"envelope: {_validation_summary(error)}")
        latest = self._latest.get(envelope.type)
        if latest is None:
            return Rejected(
                RejectReason.UNKNOWN_TYPE,
                f"event type {envelope.type!r} is not in this consumer's catalogue",
                envelope.type,
                envelope.schema_version,
            )
        model = self._by_key.get((envelope.type, envelope.schema_version))
        if model is None:
            reason = (
                RejectReason.NEWER_VERSION
                if envelope.schema_version > latest
                else RejectReason.MALFORMED
            )
            return Rejected(
                reason,
                f"{envelope.type} v{envelope.schema_version} is not known "
                f"(latest known: v{latest})",
                envelope.type,
                envelope.schema_version,
            )
        try:
            payload = model.model_validate(envelope.payload)
        except ValidationError as error:
            return Rejected(
                RejectReason.MALFORMED,
                f"payload of {envelope.type} v{envelope.schema_version}: "
                f"{_validation_summary(error)}",
                envelope.type,
                envelope.schema_version,
            )
        return self._upcast(envelope, payload)

    def _upcast(self, envelope: EventMetadata, payload: DomainEvent) -> Event | Rejected:
        """The event with its payload upcast to the newest known version, checked."""
        latest = self._latest[envelope.type]
        model = type(payload)
        while payload.schema_version < latest:
            try:
                newer = payload.upcast()
            except (ValidationError, ValueError, NotImplementedError) as error:
                return Rejected(
                    RejectReason.MALFORMED,
                    f"upcasting {envelope.type} v{payload.schema_version} failed: {error}",
                    envelope.type,
                    envelope.schema_version,
                )
            except Exception as error:  # a bug in upcast(): this record only, never the loop
                return Rejected(
                    RejectReason.UPCAST_FAILED,
                    f"{type(payload).__name__}.upcast() raised {type(error).__name__}: {error}",
                    envelope.type,
                    envelope.schema_version,
                )
            if (
                newer.event_type != payload.event_type
                or newer.schema_version <= payload.schema_version
            ):
                return Rejected(
                    RejectReason.MALFORMED,
                    f"{type(payload).__name__}.upcast() returned {newer.event_type} "
                    f"v{newer.schema_version}, not a newer {payload.event_type}",
                    envelope.type,
                    envelope.schema_version,
                )
            payload = newer
        if payload.aggregate_id() != envelope.aggregate_id:
            return Rejected(
                RejectReason.MALFORMED,
                f"envelope aggregate_id {envelope.aggregate_id!r} differs from the payload's "
                f"{model.aggregate_id_field}={payload.aggregate_id()!r}",
                envelope.type,
                envelope.schema_version,
            )
        return Event(envelope=envelope, payload=payload)


def _type_and_version(headers: RecordHeaders) -> tuple[bytes | None, bytes | None]:
    """The raw type and version headers (None where missing: no typed envelope matches)."""
    if len(headers) >= 2:  # as EventPublisher writes them: type first, version second
        (first, event_type), (second, version) = headers[0], headers[1]
        if first == HEADER_EVENT_TYPE and second == HEADER_SCHEMA_VERSION:
            return event_type, version
    by_name = dict(headers)
    return by_name.get(HEADER_EVENT_TYPE), by_name.get(HEADER_SCHEMA_VERSION)
