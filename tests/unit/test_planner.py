"""The planner: events to concrete namespaces, coalesced, with fan-out, no I/O."""

from __future__ import annotations

from contracts import Catalogue, Event, EventEnvelope, Namespace, PurgeRule
from contracts.events import DomainEvent
from contracts.example_orders import (
    CATALOGUE,
    COMPANY_ORDER_STATS,
    COMPANY_ORDERS,
    COMPANY_PROFILE,
    ORDER,
    CompanyRenamed,
    OrderCreated,
    OrderStatusChanged,
    OrderUpdated,
)
from invalidator.planner import purge_plan


def _event(payload: DomainEvent) -> Event:
    envelope = EventEnvelope.wrap(payload, source="test", tenant="acme", aggregate_version=1)
    decoded = CATALOGUE.schemas.decode(envelope.to_bytes())
    assert isinstance(decoded, Event)
    return decoded


def test_order_created_purges_list_stats_and_order() -> None:
    plan = purge_plan(
        [(0, _event(OrderCreated(order_id="o1", company_id="c1", total_cents=5)))], CATALOGUE
    )
    assert set(plan.namespaces) == {
        COMPANY_ORDERS.bind(company_id="c1"),
        COMPANY_ORDER_STATS.bind(company_id="c1"),
        ORDER.bind(order_id="o1"),
    }
    assert plan.planned == 1 and plan.unplannable == ()


def test_an_order_that_moved_company_purges_both_companies() -> None:
    moved = OrderUpdated(order_id="o1", company_id="new", total_cents=5, previous_company_id="old")
    plan = purge_plan([(0, _event(moved))], CATALOGUE)
    assert set(plan.namespaces) == {
        COMPANY_ORDERS.bind(company_id="old"),
        COMPANY_ORDERS.bind(company_id="new"),
        COMPANY_ORDER_STATS.bind(company_id="old"),
        COMPANY_ORDER_STATS.bind(company_id="new"),
        ORDER.bind(order_id="o1"),
    }
    assert len(plan.namespaces) == 5


def test_an_order_that_stayed_purges_its_one_company() -> None:
    stayed = OrderUpdated(order_id="o1", company_id="c1", total_cents=5)
    plan = purge_plan([(0, _event(stayed))], CATALOGUE)
    assert set(plan.namespaces) == {
        COMPANY_ORDERS.bind(company_id="c1"),
        COMPANY_ORDER_STATS.bind(company_id="c1"),
        ORDER.bind(order_id="o1"),
    }
    assert len(plan.namespaces) == 3 and plan.unplannable == ()


def test_a_batch_is_coalesced_to_each_namespace_once() -> None:
    events = [
        (
            i,
            _event(
                OrderStatusChanged(
                    order_id="o1", company_id="c1", old_status="placed", new_status="paid"
                )
            ),
        )
        for i in range(50)
    ]
    events.append((50, _event(CompanyRenamed(company_id="c1", name="Acme"))))
    plan = purge_plan(events, CATALOGUE)
    assert plan.planned == 51
    assert len(plan.namespaces) == 4
    assert set(plan.namespaces) == {
        COMPANY_ORDERS.bind(company_id="c1"),
        COMPANY_ORDER_STATS.bind(company_id="c1"),
        ORDER.bind(order_id="o1"),
        COMPANY_PROFILE.bind(company_id="c1"),
    }


def test_events_whose_values_cannot_render_a_key_are_reported_not_dropped() -> None:
    class NoteAdded(DomainEvent):
        event_type = "notes.NoteAdded"
        aggregate_type = "note"
        aggregate_id_field = "note_id"
        topic = "notes.events"
        note_id: str
        title: str

    titles = Namespace(
        name="note_by_title",
        template="note:{title}",
        owner="t",
        description="d",
        purged_by=(PurgeRule(NoteAdded, {"title": "payload.title"}),),
    )
    catalogue = Catalogue([titles])
    good = EventEnvelope.wrap(
        NoteAdded(note_id="n1", title="ok"), source="s", tenant="t", aggregate_version=1
    )
    bad = EventEnvelope.wrap(
        NoteAdded(note_id="n2", title="a*"), source="s", tenant="t", aggregate_version=1
    )
    events = [
        (ref, catalogue.schemas.decode(e.to_bytes())) for ref, e in (("good", good), ("bad", bad))
    ]
    plan = purge_plan([(ref, e) for ref, e in events if isinstance(e, Event)], catalogue)
    assert plan.namespaces == (titles.bind(title="ok"),)
    assert [ref for ref, _ in plan.unplannable] == ["bad"]
    assert "title='a*'" in plan.unplannable[0][1]


def test_envelope_fields_render_into_keys() -> None:
    class ThingMoved(DomainEvent):
        event_type = "things.ThingMoved"
        aggregate_type = "thing"
        aggregate_id_field = "thing_id"
        topic = "things.events"
        thing_id: str

    per_tenant = Namespace(
        name="tenant_things",
        template="tenant:{tenant}:thing:{thing_id}:from:{source}",
        owner="t",
        description="d",
        purged_by=(
            PurgeRule(
                ThingMoved,
                {
                    "tenant": "envelope.tenant",
                    "thing_id": "payload.thing_id",
                    "source": "envelope.source",
                },
            ),
        ),
    )
    catalogue = Catalogue([per_tenant])
    envelope = EventEnvelope.wrap(
        ThingMoved(thing_id="t1"), source="warehouse", tenant="acme", aggregate_version=3
    )
    event = catalogue.schemas.decode(envelope.to_bytes())
    assert isinstance(event, Event)
    plan = purge_plan([(0, event)], catalogue)
    assert [ns.key for ns in plan.namespaces] == ["tenant:acme:thing:t1:from:warehouse"]
