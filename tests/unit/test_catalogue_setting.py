"""INVALIDATOR_CATALOGUE has no default: a command that needs a catalogue and is given none
stops before it touches Kafka or Redis, with exit status 2 and a message naming the setting."""

from __future__ import annotations

import pytest

from contracts.catalogue import import_catalogue
from contracts.example_orders import CATALOGUE, EXAMPLE_CATALOGUE
from invalidator.cli import main
from invalidator.operators import EXIT_INPUT
from invalidator.settings import InvalidatorSettings

REGIONS = '{"eu": [{"name": "eu-main", "url": "redis://127.0.0.1:1/0"}]}'


@pytest.fixture(autouse=True)
def _no_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVALIDATOR_REGIONS", REGIONS)
    # Nothing listens there: a command that went on to Kafka would exit 3, not 2.
    monkeypatch.setenv("INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.delenv("INVALIDATOR_CATALOGUE", raising=False)


def test_the_settings_name_no_catalogue_by_default() -> None:
    assert InvalidatorSettings().catalogue is None


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--region", "eu"],
        ["topics", "create"],
        ["topics", "check"],
        ["offsets", "show"],
        ["offsets", "rewind", "--region", "eu", "--to-earliest"],
        ["replay", "--region", "eu", "--from", "1h"],
        ["purge", "--region", "eu", "company_orders", "company_id=42", "--yes"],
        ["dead-letters", "redrive", "--from", "1h"],
        ["catalogue", "check"],
        ["catalogue", "show"],
        ["catalogue", "export"],
    ],
    ids=" ".join,
)
def test_a_command_that_needs_a_catalogue_stops_naming_the_setting(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    status = main(argv)
    captured = capsys.readouterr()
    assert status == EXIT_INPUT, captured.err
    assert captured.err.startswith("invalidator: INVALIDATOR_CATALOGUE is not set"), captured.err
    assert "package.module:attribute" in captured.err and "--catalogue" in captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_the_message_names_the_example_catalogue_where_it_lives(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["run", "--region", "eu"])
    assert EXAMPLE_CATALOGUE in capsys.readouterr().err
    assert import_catalogue(EXAMPLE_CATALOGUE, setting="test") is CATALOGUE


def test_the_catalogue_option_is_enough(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalogue", "check", "--catalogue", EXAMPLE_CATALOGUE]) == 0
    assert f"catalogue {EXAMPLE_CATALOGUE}: ok" in capsys.readouterr().out
