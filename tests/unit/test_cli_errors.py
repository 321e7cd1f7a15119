"""Every error raised for a person to fix ends the `invalidator` command the same way: exit
status 2 and one line on standard error that names the fix, never a traceback."""

from __future__ import annotations

import pytest

import contracts.errors
from contracts import CacheInvalidationError, ConnectionSecurityError, MissingTopicsError
from contracts.example_orders import EXAMPLE_CATALOGUE
from invalidator import cli
from invalidator.cli import main
from invalidator.operators import EXIT_INPUT
from invalidator.settings import InvalidatorSettings

REGIONS = '{"eu": [{"name": "eu-main", "url": "redis://127.0.0.1:1/0"}]}'


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVALIDATOR_REGIONS", REGIONS)
    monkeypatch.setenv("INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("INVALIDATOR_CATALOGUE", EXAMPLE_CATALOGUE)
    monkeypatch.delenv("INVALIDATOR_START_FROM", raising=False)


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    status = main(argv)
    err = capsys.readouterr().err
    assert status == EXIT_INPUT, err
    assert err.startswith("invalidator: "), err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["run", "--region", "apac"], "unknown region 'apac'", id="SettingsError"),
        pytest.param(
            ["catalogue", "show", "--catalogue", "tests.contract.broken_catalogue:CATALOGUE"],
            "the catalogue has problems",
            id="CatalogueError",
        ),
        pytest.param(
            ["purge", "--region", "eu", "company_orders", "company_id=4*2", "--yes"],
            "company_id='4*2' may only contain",
            id="NamespaceParamError",
        ),
        pytest.param(
            ["purge", "--region", "eu", "company_orders", "company_id", "--yes"],
            "write PARAM=VALUE",
            id="OperatorInputError",
        ),
    ],
)
def test_an_error_to_fix_exits_2_with_its_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    assert expected in _refused(capsys, argv)


def test_a_missing_topic_exits_2_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def no_topics(settings: InvalidatorSettings, catalogue: object) -> None:
        raise MissingTopicsError(["orders.events"], bootstrap_servers="127.0.0.1:1")

    async def accepted(settings: InvalidatorSettings, region: str) -> None:
        return None

    monkeypatch.setattr(cli, "check_connections", accepted)
    monkeypatch.setattr(cli, "require_topics", no_topics)
    err = _refused(capsys, ["run", "--region", "eu"])
    assert "orders.events do not exist on 127.0.0.1:1" in err


def test_a_refused_tls_handshake_or_login_exits_2_naming_the_endpoint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def refused(settings: InvalidatorSettings, region: str) -> None:
        raise ConnectionSecurityError("Kafka 10.0.0.5:9093", "the server's certificate has expired")

    monkeypatch.setattr(cli, "check_connections", refused)
    err = _refused(capsys, ["run", "--region", "eu"])
    assert err == (
        "invalidator: Kafka 10.0.0.5:9093 refused the connection: the server's certificate has"
        " expired\n"
    )


def test_every_error_of_the_errors_module_shares_the_base() -> None:
    raised = [
        value
        for value in vars(contracts.errors).values()
        if isinstance(value, type) and issubclass(value, Exception)
    ]
    assert len(raised) > 5
    assert all(issubclass(error, CacheInvalidationError) for error in raised)
