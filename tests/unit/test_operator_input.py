"""Operator input refused before anything is touched: exit status 2 and a message naming it."""

from __future__ import annotations

import pytest

from invalidator.cli import main

REGIONS = '{"eu": [{"name": "eu-main", "url": "redis://127.0.0.1:1/0"}]}'


def test_a_purge_parameter_given_twice_is_refused_naming_both_values(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INVALIDATOR_REGIONS", REGIONS)
    monkeypatch.setenv("INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    status = main(
        ["purge", "--region", "eu", "company_orders", "company_id=A", "company_id=B", "--yes"]
    )
    err = capsys.readouterr().err
    assert status == 2, err
    assert "company_id is given twice ('A' and 'B')" in err
