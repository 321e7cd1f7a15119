"""The catalogue checks: collisions, purging events, field types, event declarations."""

from __future__ import annotations

import re
from typing import ClassVar

import pytest

from contracts import (
    Catalogue,
    CatalogueError,
    DomainEvent,
    Event,
    EventEnvelope,
    Namespace,
    PurgeRule,
    Rejected,
    RejectReason,
)
from contracts.checks import colliding_key
from contracts.events import SafeId
from contracts.example_orders import CATALOGUE, OrderCreated
from contracts.namespaces import TEMPLATE_PARAM


@pytest.mark.parametrize(
    ("first", "second", "collide"),
    [
        ("company:{id}:orders", "company:{id}:profile", False),
        ("company:{a}", "company:{b}", True),
        ("order:{id}", "order:{id}:items", False),
        ("user-{id}", "user-{a}-{b}", True),
        ("x:{a}.json", "x:{b}", True),
        ("a{x}", "b{x}", False),
        ("t:{a}:{b}", "t:{c}", False),
        ("report:{day}", "report:latest", True),
    ],
)
def test_key_collisions_are_found_exactly(first: str, second: str, collide: bool) -> None:
    example = colliding_key(first, second)
    assert (example is not None) is collide
    if example is not None:
        as_regex = [
            re.compile(
                TEMPLATE_PARAM.sub(
                    "[A-Za-z0-9_.-]+", re.escape(t).replace(r"\{", "{").replace(r"\}", "}")
                )
            )
            for t in (first, second)
        ]
        assert all(r.fullmatch(example) for r in as_regex), example


class ThingChanged(DomainEvent):
    event_type: ClassVar[str] = "things.ThingChanged"
    schema_version: ClassVar[int] = 2
    aggregate_type: ClassVar[str] = "thing"
    aggregate_id_field: ClassVar[str] = "thing_id"
    topic: ClassVar[str] = "things.events"

    thing_id: SafeId
    tags: tuple[SafeId, ...] = ()
    price: float = 0.0
    owner_id: SafeId | None = None


def _ns(name: str, template: str, *rules: PurgeRule) -> Namespace:
    return Namespace(name=name, template=template, owner="t", description="d", purged_by=rules)


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(CatalogueError) as raised:
        Catalogue(
            [
                _ns("by_tag", "tag:{tag}"),
                _ns("by_price", "price:{p}", PurgeRule(ThingChanged, {"p": "payload.price"})),
                _ns("a", "thing:{id}", PurgeRule(ThingChanged, {"id": "payload.thing_id"})),
                _ns("b", "thing:{other}", PurgeRule(ThingChanged, {"other": "payload.owner_id"})),
            ]
        )
    message = str(raised.value)
    assert "'by_tag' has no purging event" in message
    assert "payload.price of type <class 'float'>" in message
    assert "'a' and 'b' can render the same key" in message


def test_event_declarations_are_checked() -> None:
    class Incomplete(DomainEvent):
        event_type: ClassVar[str] = "x.Incomplete"
        aggregate_id_field: ClassVar[str] = "nope"
        thing_id: SafeId

    with pytest.raises(CatalogueError) as raised:
        Catalogue([_ns("x", "x:{id}", PurgeRule(Incomplete, {"id": "payload.thing_id"}))])
    assert "declare the class variable topic" in str(raised.value)
    assert "aggregate_id_field 'nope'" in str(raised.value)


def test_list_fields_fan_out_and_none_purges_nothing() -> None:
    by_tag = _ns("by_tag", "tag:{tag}", PurgeRule(ThingChanged, {"tag": "payload.tags"}))
    by_owner = _ns(
        "by_owner", "owner:{owner}", PurgeRule(ThingChanged, {"owner": "payload.owner_id"})
    )
    catalogue = Catalogue([by_tag, by_owner])
    envelope = EventEnvelope.wrap(
        ThingChanged(thing_id="t1", tags=["red", "blue", "red"]),
        source="s",
        tenant="acme",
        aggregate_version=1,
    )
    event = catalogue.schemas.decode(envelope.to_bytes())
    assert isinstance(event, Event)
    assert [ns.key for ns in catalogue.purges_for(event)] == ["tag:red", "tag:blue"]


def test_the_example_catalogue_passes_every_check() -> None:
    assert len(CATALOGUE.namespaces) == 4
    assert OrderCreated in CATALOGUE.schemas.models()


class ThingChangedV1(DomainEvent):
    event_type: ClassVar[str] = "things.ThingChanged"
    schema_version: ClassVar[int] = 1
    aggregate_type: ClassVar[str] = "thing"
    aggregate_id_field: ClassVar[str] = "thing_id"
    topic: ClassVar[str] = "things.events"

    thing_id: SafeId


def test_an_older_version_without_upcast_is_a_problem() -> None:
    with pytest.raises(CatalogueError, match=r"ThingChangedV1 .* does not override upcast\(\)"):
        Catalogue(
            [_ns("t", "thing:{id}", PurgeRule(ThingChanged, {"id": "payload.thing_id"}))],
            events=(ThingChangedV1,),
        )


def test_an_upcast_to_the_wrong_type_is_rejected_as_malformed() -> None:
    class Broken(ThingChangedV1):
        def upcast(self) -> DomainEvent:
            return OrderCreated(order_id="o", company_id="c", total_cents=1)

    catalogue = Catalogue(
        [_ns("t", "thing:{id}", PurgeRule(ThingChanged, {"id": "payload.thing_id"}))],
        events=(Broken,),
    )
    envelope = EventEnvelope.wrap(
        Broken(thing_id="t1"), source="s", tenant="a", aggregate_version=1
    )
    outcome = catalogue.schemas.decode(envelope.to_bytes())
    assert isinstance(outcome, Rejected) and outcome.reason is RejectReason.MALFORMED
    assert "not a newer things.ThingChanged" in outcome.detail


def test_an_upcast_that_raises_anything_rejects_the_record_and_names_the_error() -> None:
    class Buggy(ThingChangedV1):
        def upcast(self) -> DomainEvent:
            raise KeyError("colour")

    catalogue = Catalogue(
        [_ns("t", "thing:{id}", PurgeRule(ThingChanged, {"id": "payload.thing_id"}))],
        events=(Buggy,),
    )
    envelope = EventEnvelope.wrap(Buggy(thing_id="t1"), source="s", tenant="a", aggregate_version=1)
    for headers in ((), [(k, v.encode()) for k, v in envelope.headers().items()]):
        outcome = catalogue.schemas.decode(envelope.to_bytes(), headers)
        assert isinstance(outcome, Rejected) and outcome.reason is RejectReason.UPCAST_FAILED
        assert outcome.detail == "Buggy.upcast() raised KeyError: 'colour'"


def test_one_type_and_version_in_two_classes_is_refused_naming_both() -> None:
    class ThingChangedAgain(DomainEvent):
        event_type: ClassVar[str] = "things.ThingChanged"
        schema_version: ClassVar[int] = 2
        aggregate_type: ClassVar[str] = "thing"
        aggregate_id_field: ClassVar[str] = "thing_id"
        topic: ClassVar[str] = "things.events"

        thing_id: SafeId
        colour: str

    with pytest.raises(CatalogueError) as raised:
        Catalogue(
            [
                _ns("a", "thing:{id}", PurgeRule(ThingChanged, {"id": "payload.thing_id"})),
                _ns("b", "colour:{id}", PurgeRule(ThingChangedAgain, {"id": "payload.thing_id"})),
            ]
        )
    message = str(raised.value)
    assert "things.ThingChanged v2 is declared by 2 classes" in message
    assert "test_checks.ThingChanged," in message
    assert "ThingChangedAgain)" in message
