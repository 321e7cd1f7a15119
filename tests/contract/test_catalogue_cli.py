"""`invalidator catalogue check | show | export`, and the generated docs being up to date."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from contracts.docs import catalogue_json, catalogue_markdown
from contracts.example_orders import CATALOGUE
from invalidator.cli import main
from invalidator.operators import asyncapi_document

DOCS = Path(__file__).resolve().parents[2] / "docs"
TITLE = "Example domain: orders"
DOCS_SERVER = "127.0.0.1:19092"  # what `make docs` passes


def test_check_passes_on_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalogue", "check"]) == 0
    assert "ok (4 namespaces, 5 event types" in capsys.readouterr().out


def test_check_fails_with_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        ["catalogue", "check", "--catalogue", "tests.contract.broken_catalogue:CATALOGUE"]
    )
    err = capsys.readouterr().err
    assert status == 1
    assert "FAILED" in err
    assert "payload.compnay_id, a field OrderCreated does not have" in err
    assert "'orphan' has no purging event" in err


def test_show_lists_event_namespace_and_key_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalogue", "show"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(
        "orders.OrderUpdated" in line
        and "company:{company_id}:orders" in line
        and "payload.previous_company_id" in line
        for line in lines
    )


def test_export_json_names_what_each_event_purges(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "catalogue.json"
    assert main(["catalogue", "export", "--format", "json", "--output", str(target)]) == 0
    exported = json.loads(target.read_text())
    created = next(e for e in exported["events"] if e["type"] == "orders.OrderCreated")
    assert created["versions"] == [1, 2]
    assert {p["namespace"] for p in created["purges"]} == {
        "company_orders",
        "order",
        "company_order_stats",
    }
    assert "currency" in created["payload_schema"]["properties"]


def test_asyncapi_describes_every_topic_with_typed_envelopes(tmp_path: Path) -> None:
    target = tmp_path / "asyncapi.json"
    assert main(["catalogue", "export", "--format", "asyncapi", "--output", str(target)]) == 0
    document = json.loads(target.read_text())
    assert document["asyncapi"].startswith("3.")
    assert set(document["channels"]) == {*CATALOGUE.topics(), "invalidator.dead-letter"}
    schemas = document["components"]["schemas"]
    assert schemas["OrderCreatedEnvelope"]["properties"]["type"]["const"] == "orders.OrderCreated"
    assert "OrderCreatedV1Envelope" in schemas


def test_the_published_contract_has_the_id_rule_the_headers_and_the_key(tmp_path: Path) -> None:
    target = tmp_path / "asyncapi.json"
    assert main(["catalogue", "export", "--format", "asyncapi", "--output", str(target)]) == 0
    document = json.loads(target.read_text())
    schemas = document["components"]["schemas"]
    envelope = schemas["OrderCreatedEnvelope"]["properties"]
    for id_schema in (
        envelope["tenant"],
        envelope["aggregate_id"],
        schemas["OrderCreated"]["properties"]["order_id"],
    ):
        pattern = re.compile(id_schema["pattern"])
        assert pattern.fullmatch("o-7.x_Y") and not pattern.fullmatch("o 7")
        assert not pattern.fullmatch("x" * 129) and not pattern.fullmatch("")
    orders = document["components"]["messages"]["orders.events:Message"]
    assert set(orders["headers"]["required"]) == {
        "event-type",
        "schema-version",
        "event-id",
        "content-type",
    }
    key = re.compile(orders["bindings"]["kafka"]["key"]["pattern"])
    assert key.fullmatch("order:o-7") and not key.fullmatch("o-7")
    dead = document["components"]["messages"]["invalidator.dead-letter:DeadLetter"]
    assert {"dlq-reason", "dlq-detail", "dlq-topic", "dlq-partition", "dlq-offset"} <= set(
        dead["headers"]["required"]
    )


def test_the_docs_of_the_example_domain_are_up_to_date() -> None:
    generated = {
        "catalogue.md": catalogue_markdown(CATALOGUE, title=TITLE) + "\n",
        "catalogue.json": json.dumps(catalogue_json(CATALOGUE), indent=2, sort_keys=True) + "\n",
        "asyncapi.json": json.dumps(
            json.loads(asyncapi_document(CATALOGUE, bootstrap_servers=DOCS_SERVER, title=TITLE)),
            indent=2,
            sort_keys=True,
        )
        + "\n",
    }
    stale = [name for name, text in generated.items() if (DOCS / name).read_text() != text]
    assert stale == [], f"docs/{', docs/'.join(stale)} out of date: run `make docs`"
