"""The event envelope, the base of domain event payloads, and their wire encoding."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    create_model,
)
from pydantic.fields import FieldInfo

from contracts.ids import ID_PATTERN

HEADER_EVENT_TYPE = "event-type"
HEADER_SCHEMA_VERSION = "schema-version"
HEADER_EVENT_ID = "event-id"
HEADER_CONTENT_TYPE = "content-type"
CONTENT_TYPE_JSON = "application/json"
KEY_FORMAT = "<aggregate_type>:<aggregate_id>"
"""The Kafka record key of every event, e.g. `order:o-7` (not the bare id): events of one
aggregate share a partition and stay in order only if every producer keys them alike."""
HEADERS_DOC = {
    HEADER_EVENT_TYPE: "the envelope's type, e.g. orders.OrderCreated",
    HEADER_SCHEMA_VERSION: "the envelope's schema_version, as decimal text",
    HEADER_EVENT_ID: "the envelope's event_id (a UUID)",
    HEADER_CONTENT_TYPE: CONTENT_TYPE_JSON,
}
"""The headers every event is published with (UTF-8 values), and what each holds."""


SafeId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
"""A string id that is safe to put inside a Redis key (see `contracts.ids`): checked by
pydantic-core while the JSON is parsed, and published as a `pattern` in the JSON Schema."""


def holds_safe_id(field: FieldInfo) -> bool:
    """Whether a model field is declared `SafeId` (its values were checked on validation)."""
    return field.annotation is str and any(
        getattr(constraint, "pattern", None) == ID_PATTERN for constraint in field.metadata
    )


class DomainEvent(BaseModel):
    """Base of every event payload.

    A subclass declares, as class variables, what travels in the envelope: `event_type`
    (e.g. `orders.OrderCreated`), `schema_version`, `aggregate_type`, the payload field that holds
    the aggregate id (`aggregate_id_field`) and the Kafka `topic`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    aggregate_type: ClassVar[str]
    aggregate_id_field: ClassVar[str]
    topic: ClassVar[str]

    def aggregate_id(self) -> str:
        """The id of the aggregate this event belongs to (the Kafka partition key)."""
        return str(getattr(self, self.aggregate_id_field))

    def upcast(self) -> DomainEvent:
        """This event in a newer schema version of the same type.

        Every version older than the newest a catalogue knows overrides it, so that the
        consumer decodes whatever was ever published and plans with the newest model.
        """
        raise NotImplementedError(
            f"{type(self).__name__} ({self.event_type} v{self.schema_version}) has no upcast()"
        )


class TraceContext(BaseModel):
    """W3C trace context carried from the write to the purge."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    traceparent: str = Field(max_length=55)
    tracestate: str | None = Field(default=None, max_length=512)


class EventMetadata(BaseModel):
    """Every envelope field but the payload: what every consumer needs to route an event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID
    type: str = Field(min_length=1, max_length=200)
    schema_version: int = Field(ge=1)
    occurred_at: AwareDatetime
    source: str = Field(min_length=1, max_length=200)
    tenant: SafeId
    aggregate_type: str = Field(min_length=1, max_length=200)
    aggregate_id: SafeId
    aggregate_version: int = Field(ge=0)
    trace: TraceContext | None = None

    def headers(self) -> dict[str, str]:
        """The Kafka headers: type and version travel outside the body too."""
        return {
            HEADER_EVENT_TYPE: self.type,
            HEADER_SCHEMA_VERSION: str(self.schema_version),
            HEADER_EVENT_ID: str(self.event_id),
            HEADER_CONTENT_TYPE: CONTENT_TYPE_JSON,
        }

    def partition_key(self) -> bytes:
        """The Kafka key: events of one aggregate share a partition and keep their order."""
        return f"{self.aggregate_type}:{self.aggregate_id}".encode()


class EventEnvelope(EventMetadata):
    """What goes on the wire: the metadata, and the typed payload as JSON."""

    payload: dict[str, Any]

    @classmethod
    def wrap(
        cls,
        event: DomainEvent,
        *,
        source: str,
        tenant: str,
        aggregate_version: int,
        event_id: uuid.UUID | None = None,
        occurred_at: datetime | None = None,
        trace: TraceContext | None = None,
    ) -> EventEnvelope:
        """Build the envelope of `event`.

        event: the typed payload.
        source: the publishing service's name.
        tenant: the tenant id (a safe id).
        aggregate_version: the aggregate's version after this change (monotonic per aggregate).
        event_id: the unique id for dedupe; a fresh UUID4 when omitted.
        occurred_at: when the change happened; now (UTC) when omitted.
        trace: the W3C trace context of the write, if any.
        """
        return cls(
            event_id=event_id or uuid.uuid4(),
            type=event.event_type,
            schema_version=event.schema_version,
            occurred_at=occurred_at or datetime.now(UTC),
            source=source,
            tenant=tenant,
            aggregate_type=event.aggregate_type,
            aggregate_id=event.aggregate_id(),
            aggregate_version=aggregate_version,
            trace=trace,
            payload=event.model_dump(mode="json"),
        )

    def to_bytes(self) -> bytes:
        """The JSON encoding published as the Kafka record value."""
        return self.model_dump_json().encode()


def typed_envelope(model: type[DomainEvent]) -> type[EventMetadata]:
    """The envelope of one event type and version: `type` and `schema_version` fixed, the
    payload typed. Validating a record with it checks the metadata and the payload in one pass
    (the consumer's fast path), and it is the schema the AsyncAPI document publishes."""
    # Literal types built at run time: typed as Any for the checker.
    event_type: Any = Literal[model.event_type]
    schema_version: Any = Literal[model.schema_version]
    return create_model(
        f"{model.__name__}Envelope",
        __base__=EventMetadata,
        __doc__=(model.__doc__ or "").strip() or None,
        type=(event_type, ...),
        schema_version=(schema_version, ...),
        payload=(model, ...),
    )


@dataclass(frozen=True, slots=True)
class Event:
    """A decoded event.

    envelope: its metadata as received.
    payload: the typed payload, upcast to the newest version the consumer knows.
    """

    envelope: EventMetadata
    payload: DomainEvent
