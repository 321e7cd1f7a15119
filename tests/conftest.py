"""Shared test fixtures and plugins; `wait_until` lives in tests/waiting.py (re-exported here for
the tests that import it from this module)."""

from __future__ import annotations

from tests.waiting import wait_until

__all__ = ["wait_until"]

pytest_plugins = ["contracts.pytest_plugin", "pytester"]
