"""Catalogue declarations are checked when they are built."""

from __future__ import annotations

import pytest

from contracts import Catalogue, CatalogueError, Namespace, PurgeRule
from contracts.example_orders import CATALOGUE, OrderCreated, OrderUpdated


def _namespace(template: str = "thing:{order_id}", **rule_params: str) -> Namespace:
    return Namespace(
        name="thing",
        template=template,
        owner="team",
        description="a thing",
        purged_by=(PurgeRule(OrderCreated, rule_params or {"order_id": "payload.order_id"}),),
    )


def test_rule_must_map_every_template_parameter() -> None:
    with pytest.raises(CatalogueError, match="needs"):
        Catalogue([_namespace("thing:{order_id}:{company_id}")])


def test_rule_must_name_a_field_the_event_has() -> None:
    with pytest.raises(CatalogueError, match=r"payload\.ordr_id"):
        Catalogue([_namespace(order_id="payload.ordr_id")])
    with pytest.raises(CatalogueError, match=r"'payload\.<field>' or 'envelope\.<field>'"):
        Catalogue([_namespace(order_id="order_id")])


def test_envelope_fields_can_be_mapped() -> None:
    catalogue = Catalogue([_namespace(order_id="envelope.tenant")])
    assert catalogue.namespace("thing").params == ("order_id",)


@pytest.mark.parametrize(
    "template", ["thing", "thing:*:{order_id}", "{order_id}:{order_id}", "a b:{x}"]
)
def test_templates_are_validated(template: str) -> None:
    with pytest.raises(CatalogueError):
        _namespace(template)


def test_duplicate_namespace_names_are_refused() -> None:
    with pytest.raises(CatalogueError, match="twice"):
        Catalogue([_namespace(), _namespace()])


def test_example_catalogue_knows_its_topics_and_events() -> None:
    assert CATALOGUE.topics() == ["companies.events", "orders.events"]
    assert OrderUpdated in CATALOGUE.schemas.models()
    with pytest.raises(CatalogueError, match="known: company_order_stats"):
        CATALOGUE.namespace("orders")
