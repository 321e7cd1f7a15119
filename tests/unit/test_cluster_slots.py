"""`slot_of`, the purge's own slot computation, gives the slot redis-py's `key_slot` (Redis's
rule) gives, for the keys the purge sets and for any other text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from contracts.example_orders import COMPANY_ORDERS
from contracts.layout import generation_key, hold_off_key
from invalidator.bulk_set import slot_of


@pytest.mark.parametrize(
    "key",
    [
        generation_key(COMPANY_ORDERS.bind(company_id="c-1")),
        hold_off_key(COMPANY_ORDERS.bind(company_id="c-1")),
        "{}:gen",  # an empty tag: the whole key is hashed
        "{a",  # no closing brace
        "a{b}c",  # a tag that does not start the key
        "{a}{b}",  # the first tag only
        "}{a}",  # a closing brace before the tag
        "{é}:gen",  # not ASCII
        "",
    ],
)
def test_the_slot_is_redis_s(key: str) -> None:
    assert slot_of(key) == key_slot(key.encode())


@given(st.text(alphabet=st.sampled_from("{}ab:é"), max_size=12))
def test_any_key_s_slot_is_redis_s(key: str) -> None:
    assert slot_of(key) == key_slot(key.encode())
