"""The `invalidator` command runs the handler its parser named: every command has one, and a
command registered without one is an error that runs nothing (never a replay)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

import pytest

from contracts.example_orders import EXAMPLE_CATALOGUE
from invalidator import cli
from invalidator.cli import command_parser, main
from invalidator.operators import _replay_commands, add_catalogue_option, add_operator_commands

REGIONS = '{"eu": [{"name": "eu-main", "url": "redis://127.0.0.1:1/0"}]}'


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command the parser runs (a sub-parser with no sub-commands of its own)."""
    subcommands = [
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    ]
    if not subcommands:
        yield path, parser
    for action in subcommands:
        for name, child in action.choices.items():
            yield from _commands(child, (*path, name))


def test_every_command_names_its_handler() -> None:
    commands = dict(_commands(command_parser()))
    assert {
        ("run",),
        ("replay",),
        ("purge",),
        ("offsets", "rewind"),
        ("catalogue", "check"),
    } <= set(commands)
    unhandled = [
        " ".join(path) for path, parser in commands.items() if not parser.get_default("handler")
    ]
    assert unhandled == []


def test_a_command_without_a_handler_is_refused_and_runs_no_replay(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INVALIDATOR_REGIONS", REGIONS)
    monkeypatch.setenv("INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("INVALIDATOR_CATALOGUE", EXAMPLE_CATALOGUE)
    ran: list[str] = []

    def spy(name: str) -> Any:
        async def command(*args: Any) -> int:
            ran.append(name)
            return 0

        return command

    # Where an unknown command once fell through to; patched before the parser is built, so the
    # handlers bound to them are the spies.
    for name in ("replay_window", "purge_namespace"):
        monkeypatch.setattr(_replay_commands, name, spy(name))

    def with_a_command_only_on_the_parser(
        commands: argparse._SubParsersAction[argparse.ArgumentParser],
    ) -> None:
        add_operator_commands(commands)
        added = commands.add_parser("rewind-all")
        added.add_argument("--region")
        add_catalogue_option(added)

    monkeypatch.setattr(cli, "add_operator_commands", with_a_command_only_on_the_parser)
    with pytest.raises(SystemExit) as stopped:
        main(["rewind-all", "--region", "eu"])
    assert stopped.value.code == 2
    assert ran == []
    assert "the command 'rewind-all' has no handler; nothing was run" in capsys.readouterr().err


def test_an_unknown_command_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["rewind-all"])
    assert stopped.value.code == 2
    assert "invalid choice: 'rewind-all'" in capsys.readouterr().err
