"""Operator input refused before anything is touched: exit status 2 and a message naming it."""

from __future__ import annotations

import socket

import pytest

from invalidator.cli import main
from invalidator.deadletter import DEAD_LETTER_REASONS

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


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, err  # Kafka at 127.0.0.1:1 would have made it 3: nothing was read
    assert err.startswith("invalidator: ") and "Traceback" not in err, err
    return err


@pytest.fixture
def _unreachable_services(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVALIDATOR_REGIONS", REGIONS)
    monkeypatch.setenv("INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("INVALIDATOR_GROUP_PREFIX", "invalidator")


WINDOWS = [
    pytest.param(["--from-offset", "-5"], "--from-offset -5: an offset is 0 or more", id="from-5"),
    pytest.param(
        ["--from-offset", "0", "--to-offset", "-1"],
        "--to-offset -1: an offset is 0 or more",
        id="to-1",
    ),
    pytest.param(
        ["--from-offset", "10", "--to-offset", "5"],
        "--to-offset 5 is before --from-offset 10",
        id="offsets-reversed",
    ),
    pytest.param(
        ["--from", "2026-11-27T10:00:00Z", "--to", "2026-11-27T09:00:00Z"],
        "--to '2026-11-27T09:00:00Z' (2026-11-27T09:00:00+00:00) is earlier than --from",
        id="times-reversed",
    ),
    pytest.param(["--from", "1h", "--to", "2h"], "--to '2h'", id="durations-reversed"),
]
COMMANDS = [
    pytest.param(["dead-letters", "show"], id="show"),
    pytest.param(["dead-letters", "redrive", "--execute"], id="redrive"),
    pytest.param(["replay", "--region", "eu"], id="replay"),
]


@pytest.mark.usefixtures("_unreachable_services")
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("window", "expected"), WINDOWS)
def test_a_window_that_cannot_be_one_is_refused_naming_the_option(
    capsys: pytest.CaptureFixture[str], command: list[str], window: list[str], expected: str
) -> None:
    assert expected in _refused(capsys, [*command, *window])


@pytest.mark.usefixtures("_unreachable_services")
@pytest.mark.parametrize("command", COMMANDS[:2])
def test_a_reason_no_dead_letter_carries_is_refused_naming_the_documented_ones(
    capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    err = _refused(capsys, [*command, "--from", "1h", "--reason", "unknown-type"])
    assert (
        "--reason 'unknown-type' is not a dead-letter reason (did you mean 'unknown_type'?)" in err
    )
    assert "the reasons are: " + ", ".join(DEAD_LETTER_REASONS) in err
    assert {"unknown_type", "decode_failed", "unplannable", "purge_refused"} <= set(
        DEAD_LETTER_REASONS
    )


@pytest.mark.usefixtures("_unreachable_services")
@pytest.mark.parametrize("command", COMMANDS[:2])
def test_a_group_of_no_configured_region_is_refused_naming_the_groups(
    capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    err = _refused(capsys, [*command, "--from", "1h", "--group", "invalidator.apac"])
    assert "--group 'invalidator.apac' is the group of no configured region" in err
    assert "INVALIDATOR_GROUP_PREFIX=invalidator give: invalidator.eu" in err


@pytest.mark.usefixtures("_unreachable_services")
def test_a_negative_rewind_offset_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    err = _refused(capsys, ["offsets", "rewind", "--region", "eu", "--to-offset", "-1"])
    assert "--to-offset -1: an offset is 0 or more" in err


@pytest.mark.usefixtures("_unreachable_services")
@pytest.mark.parametrize("interval", ["0", "-5"])
def test_an_export_interval_that_is_no_period_is_refused(
    capsys: pytest.CaptureFixture[str], interval: str
) -> None:
    err = _refused(capsys, ["offsets", "export", "--port", "0", "--interval", interval])
    assert f"--interval {interval}: seconds between reads, above 0" in err


@pytest.mark.usefixtures("_unreachable_services")
def test_an_export_port_already_taken_is_refused_naming_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = _refused(capsys, ["offsets", "export", "--port", str(port)])
    assert f"--host 127.0.0.1 --port {port}: cannot listen there" in err
