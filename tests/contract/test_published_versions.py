"""Every version ever published still decodes (upcast to the newest) and purges the same keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts import Event, EventEnvelope
from contracts.example_orders import CATALOGUE

FIXTURES = Path(__file__).parent / "fixtures"
RECORDED = sorted(FIXTURES.glob("*.json"))


def test_every_known_version_has_a_recorded_fixture() -> None:
    known = {f"{m.event_type}.v{m.schema_version}.json" for m in CATALOGUE.schemas.models()}
    assert known <= {path.name for path in RECORDED}, "record a fixture for each new version"


@pytest.mark.parametrize("fixture", RECORDED, ids=[path.stem for path in RECORDED])
def test_recorded_event_decodes_to_the_newest_model_and_purges_the_same_keys(fixture: Path) -> None:
    recorded = json.loads(fixture.read_text())
    outcome = CATALOGUE.schemas.decode(json.dumps(recorded["record"]).encode())
    assert isinstance(outcome, Event), outcome
    newest = CATALOGUE.schemas.latest(outcome.envelope.type)
    assert type(outcome.payload) is newest
    assert outcome.envelope.schema_version == recorded["record"]["schema_version"]
    assert sorted(ns.key for ns in CATALOGUE.purges_for(outcome)) == recorded["purges"]


@pytest.mark.parametrize("fixture", RECORDED, ids=[path.stem for path in RECORDED])
def test_the_headers_published_with_a_recorded_event_are_still_the_same(fixture: Path) -> None:
    recorded = json.loads(fixture.read_text())
    envelope = EventEnvelope.model_validate(recorded["record"])
    assert envelope.headers() == recorded["headers"]
    assert set(recorded["headers"]) == {"event-type", "schema-version", "event-id", "content-type"}
    record = recorded["record"]
    assert (
        envelope.partition_key() == f"{record['aggregate_type']}:{record['aggregate_id']}".encode()
    )


def test_version_one_orders_are_upcast_as_placed_in_euros() -> None:
    recorded = json.loads((FIXTURES / "orders.OrderCreated.v1.json").read_text())
    outcome = CATALOGUE.schemas.decode(json.dumps(recorded["record"]).encode())
    assert isinstance(outcome, Event)
    assert outcome.payload.model_dump() == {
        "order_id": "o-1001",
        "company_id": "c-7",
        "status": "placed",
        "total_cents": 4200,
        "currency": "EUR",
    }
