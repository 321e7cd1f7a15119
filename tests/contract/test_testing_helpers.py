"""The helpers shipped for service teams, used the way a team would use them."""

from __future__ import annotations

import pytest

from contracts import Catalogue
from contracts.example_orders import COMPANY_ORDERS, OrderCreatedV1, OrderUpdated
from contracts.testing import assert_purges, purged_generation_keys


def test_assert_purges_passes_on_the_exact_set(cache_catalogue: Catalogue) -> None:
    moved = OrderUpdated(order_id="o1", company_id="new", total_cents=1, previous_company_id="old")
    assert_purges(
        moved,
        {
            COMPANY_ORDERS.bind(company_id="new"),
            "company:old:orders",
            "company:new:order-stats",
            "company:old:order-stats",
            "order:o1",
        },
        catalogue=cache_catalogue,
    )


def test_assert_purges_names_what_is_missing_and_extra(cache_catalogue: Catalogue) -> None:
    moved = OrderUpdated(order_id="o1", company_id="new", total_cents=1, previous_company_id="old")
    with pytest.raises(AssertionError) as raised:
        assert_purges(moved, {"company:new:orders", "order:o2"}, catalogue=cache_catalogue)
    message = str(raised.value)
    assert "missing: order:o2" in message
    assert "company:old:orders" in message.split("unexpected:")[1]


def test_old_versions_go_through_upcasting(cache_catalogue: Catalogue) -> None:
    old = OrderCreatedV1(order_id="o9", company_id="c9", total_cents=5)
    assert purged_generation_keys(old, catalogue=cache_catalogue) == {
        "{company:c9:orders}:gen",
        "{company:c9:order-stats}:gen",
        "{order:o9}:gen",
    }


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("tests.contract.broken_catalogue:CATALOGUE", "*'orphan' has no purging event*"),
        ("tests.contract.no_such_module:CATALOGUE", "*cache_catalogue=*cannot be loaded*"),
        (
            "contracts.example_orders:OrderCreated",
            "*is a ModelMetaclass, not a contracts.Catalogue*",
        ),
    ],
)
def test_the_fixture_fails_a_catalogue_it_cannot_use_saying_why(
    pytester: pytest.Pytester, path: str, expected: str
) -> None:
    pytester.makeini(
        f"[pytest]\ncache_catalogue = {path}\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(
        "pytest_plugins = ['contracts.pytest_plugin']\n"
        "def test_uses_it(cache_catalogue):\n    pass\n"
    )
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([expected])
