"""Property tests: any valid parameter values render a key that matches only itself under Redis
glob rules and carries exactly one hash tag; invalid values never render."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import NamespaceParamError
from contracts.layout import entry_key, generation_key
from contracts.orders import COMPANY_ORDERS, ORDER

valid_ids = st.from_regex(r"[A-Za-z0-9_.\-]{1,128}", fullmatch=True)
entries = st.from_regex(r"[A-Za-z0-9_.:=,\-]{1,64}", fullmatch=True)
GLOB_SPECIAL = "*?[]\\"


def redis_glob(pattern: str) -> re.Pattern[str]:
    """Redis's glob-style matching (stringmatchlen) as a regex: * ? [...] [^...] and \\ escapes."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                negate = body.startswith("^")
                body = body[1:] if negate else body
                out.append(("[^" if negate else "[") + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


@given(company=valid_ids, entry=entries)
def test_valid_keys_are_literal_globs_with_one_hash_tag(company: str, entry: str) -> None:
    namespace = COMPANY_ORDERS.bind(company_id=company)
    for key in (generation_key(namespace), entry_key(namespace, entry)):
        assert not set(key) & set(GLOB_SPECIAL)
        pattern = redis_glob(key)
        assert pattern.fullmatch(key)
        for other in (key + "x", key[:-1], "x" + key, key.replace(company, company + "0", 1)):
            assert not pattern.fullmatch(other)
        assert key.count("{") == 1 and key.count("}") == 1
        assert key.startswith("{" + namespace.key + "}")


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
