"""Key rendering and id validation: an id can never widen or break a key."""

from __future__ import annotations

import pytest

from contracts import CatalogueError, EntryNameError, NamespaceParamError
from contracts.example_orders import COMPANY_ORDERS, ORDER
from contracts.layout import (
    decode_entry,
    encode_entry,
    entry_key,
    generation_key,
    index_key,
    new_generation,
)


def test_bound_namespace_renders_the_template() -> None:
    bound = COMPANY_ORDERS.bind(company_id=42)
    assert bound.key == "company:42:orders"
    assert generation_key(bound) == "{company:42:orders}:gen"
    assert entry_key(bound, "page:1") == "{company:42:orders}:e:page:1"
    assert index_key(bound) == "{company:42:orders}:keys"


@pytest.mark.parametrize(
    "bad",
    ["4*2", "a?", "[ab]", "x\\y", "{x}", "a}b", "a:b", "a b", "", "tab\t", "nl\n", "é", "x" * 129],
)
def test_param_refuses_glob_hashtag_separator_and_blank(bad: str) -> None:
    with pytest.raises(NamespaceParamError) as raised:
        COMPANY_ORDERS.bind(company_id=bad)
    message = str(raised.value)
    assert "company_orders" in message
    assert "company_id=" in message
    assert "[A-Za-z0-9_.-]" in message


@pytest.mark.parametrize("bad", [True, 1.5, None, b"42"])
def test_param_refuses_non_id_types(bad: object) -> None:
    with pytest.raises(NamespaceParamError):
        ORDER.bind(order_id=bad)


def test_bind_requires_exactly_the_template_params() -> None:
    with pytest.raises(CatalogueError, match="takes parameters"):
        COMPANY_ORDERS.bind(company_id="1", extra="2")
    with pytest.raises(CatalogueError, match="takes parameters"):
        COMPANY_ORDERS.bind()


@pytest.mark.parametrize("bad", ["page*", "a b", "{x}", "", "p[1]"])
def test_entry_names_are_validated(bad: str) -> None:
    with pytest.raises(EntryNameError, match="company_orders"):
        entry_key(COMPANY_ORDERS.bind(company_id="1"), bad)


def test_entry_round_trips_and_foreign_values_are_not_entries() -> None:
    generation = new_generation()
    raw = encode_entry(generation, 3, b'{"a":\n1}')
    stored = decode_entry(raw)
    assert stored is not None
    assert (stored.generation, stored.schema_version, stored.value) == (generation, 3, b'{"a":\n1}')
    assert decode_entry(b"legacy value") is None
    assert decode_entry(b"gen\nx\nvalue") is None


def test_generations_are_unique_and_time_ordered() -> None:
    tokens = [new_generation() for _ in range(2000)]
    assert len(set(tokens)) == len(tokens)
    prefixes = [t[:16] for t in tokens]
    assert prefixes == sorted(prefixes)
