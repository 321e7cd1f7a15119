"""Property tests: any valid parameter values render a key with no glob special and exactly one
hash tag; escape_glob escapes exactly the specials; invalid values never render. (That an
escaped pattern matches only its literal under Redis's own rules is checked on real Redis in
tests/integration/test_strategies.py.)"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import NamespaceParamError
from contracts.example_orders import COMPANY_ORDERS, ORDER
from contracts.layout import entry_key, generation_key
from invalidator.purge import escape_glob

valid_ids = st.from_regex(r"[A-Za-z0-9_.\-]{1,128}", fullmatch=True)
entries = st.from_regex(r"[A-Za-z0-9_.:=,\-]{1,64}", fullmatch=True)
GLOB_SPECIAL = "*?[]\\"


@given(company=valid_ids, entry=entries)
def test_valid_keys_are_literal_globs_with_one_hash_tag(company: str, entry: str) -> None:
    namespace = COMPANY_ORDERS.bind(company_id=company)
    for key in (generation_key(namespace), entry_key(namespace, entry)):
        assert not set(key) & set(GLOB_SPECIAL)
        assert escape_glob(key) == key  # what SCAN MATCH is given is the key itself
        assert key.count("{") == 1 and key.count("}") == 1
        assert key.startswith("{" + namespace.key + "}")


def test_escape_glob_escapes_exactly_the_glob_specials() -> None:
    assert escape_glob("a*b?c[d]e\\f") == "a\\*b\\?c\\[d\\]e\\\\f"
    assert escape_glob("company:{c-1}:orders") == "company:{c-1}:orders"
    assert escape_glob("") == ""


@given(text=st.text(max_size=40))
def test_escape_glob_leaves_no_special_unescaped_and_can_be_undone(text: str) -> None:
    escaped = escape_glob(text)
    plain, index = [], 0
    while index < len(escaped):
        char = escaped[index]
        if char == "\\":
            assert escaped[index + 1] in GLOB_SPECIAL  # only specials are escaped
            plain.append(escaped[index + 1])
            index += 2
        else:
            assert char not in GLOB_SPECIAL  # no special is left bare
            plain.append(char)
            index += 1
    assert "".join(plain) == text


@given(first=valid_ids, second=valid_ids)
def test_distinct_ids_render_distinct_keys(first: str, second: str) -> None:
    same = ORDER.bind(order_id=first).key == ORDER.bind(order_id=second).key
    assert same == (first == second)


@given(
    prefix=st.text(max_size=5),
    bad=st.sampled_from([*GLOB_SPECIAL, "{", "}", ":", " ", "\t", "\n", "\x00", "é"]),
    suffix=st.text(max_size=5),
)
def test_ids_with_any_forbidden_character_never_render(prefix: str, bad: str, suffix: str) -> None:
    with pytest.raises(NamespaceParamError):
        ORDER.bind(order_id=prefix + bad + suffix)
