"""Shared test fixtures and plugins; `wait_until` lives in tests/waiting.py (re-exported here for
the tests that import it from this module)."""

from __future__ import annotations

import os

from contracts.example_orders import EXAMPLE_CATALOGUE
from tests.waiting import wait_until

__all__ = ["wait_until"]

# The tests run the example domain, chosen here (the invalidator has no default catalogue): every
# settings object read in a test, and every invalidator process a test starts, loads it.
os.environ["INVALIDATOR_CATALOGUE"] = EXAMPLE_CATALOGUE

pytest_plugins = ["contracts.pytest_plugin", "pytester"]
