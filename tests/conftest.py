"""Shared test plugins. Helpers that tests import live in helper modules (`tests/waiting.py`,
`tests/unit/loop_fakes.py`, `tests/integration/*.py` other than tests), never here."""

from __future__ import annotations

pytest_plugins = ["contracts.pytest_plugin", "pytester"]
