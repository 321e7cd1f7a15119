"""Bad configuration stops start-up with a message naming the setting, and secrets stay secret."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from contracts import KafkaConnection, RedisTarget, TlsSettings
from invalidator.cli import main
from invalidator.start_position import resolve_start_from

REGIONS = '{"eu": [{"name": "eu-main", "url": "redis://127.0.0.1:1/0"}]}'


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "INVALIDATOR_REGIONS",
        "INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS",
        "INVALIDATOR_CATALOGUE",
        "INVALIDATOR_START_FROM",
    ):
        monkeypatch.delenv(name, raising=False)


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = main(["run", *args])
    return status, capsys.readouterr().err


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("INVALIDATOR_REGIONS", "not json", "INVALIDATOR_REGIONS"),
        ("INVALIDATOR_REGIONS", '{"eu": []}', "has no Redis target"),
        ("INVALIDATOR_REGIONS", '{"e*u": [{"name": "x", "url": "redis://h:1"}]}', "region name"),
        ("INVALIDATOR_REGIONS", '{"eu": [{"name": "x", "url": "http://h:1"}]}', "redis://"),
        ("INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS", "localhost", "host:port"),
        ("INVALIDATOR_START_FROM", "yesterday", "INVALIDATOR_START_FROM: Value error, 'yesterday'"),
        ("INVALIDATOR_START_FROM", "2026-11-27T09:00:00", "earliest, latest, a time"),
    ],
)
def test_invalid_settings_exit_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    expected: str,
) -> None:
    monkeypatch.setenv("INVALIDATOR_REGIONS", REGIONS)
    monkeypatch.setenv(variable, value)
    status, err = _run(capsys, "--region", "eu")
    assert status == 2
    assert expected in err
    assert "Traceback" not in err


def test_unknown_region_lists_the_known_ones(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INVALIDATOR_REGIONS", REGIONS)
    status, err = _run(capsys, "--region", "apac")
    assert status == 2
    assert "unknown region 'apac'" in err and "eu" in err


def test_unloadable_catalogue_says_the_expected_form(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INVALIDATOR_REGIONS", REGIONS)
    status, err = _run(capsys, "--region", "eu", "--catalogue", "no.such.module:CATALOGUE")
    assert status == 2
    assert "package.module:attribute" in err
    status, err = _run(capsys, "--region", "eu", "--catalogue", "contracts.example_orders:ORDER")
    assert status == 2
    assert "not a contracts.Catalogue" in err


def test_secrets_never_show_in_reprs() -> None:
    target = RedisTarget(name="eu", url="redis://h:1/0", password="hunter2")
    kafka = KafkaConnection(sasl_mechanism="PLAIN", sasl_username="u", sasl_password="s3cret")
    assert "hunter2" not in repr(target) and "hunter2" not in str(target.model_dump())
    assert "s3cret" not in repr(kafka)
    assert target.client_kwargs()["password"] == "hunter2"
    assert kafka.client_kwargs()["sasl_plain_password"] == "s3cret"


def test_credentials_in_a_redis_url_are_refused() -> None:
    with pytest.raises(ValidationError, match="username/password"):
        RedisTarget(name="eu", url="redis://user:hunter2@h:1/0")


def test_tls_settings_on_a_plaintext_redis_url_are_refused() -> None:
    # redis-py speaks TLS only for rediss://: the TLS options would otherwise fail at connect.
    with pytest.raises(ValidationError, match="url must start with rediss://"):
        RedisTarget(name="eu", url="redis://h:1/0", tls=TlsSettings(ca_file="/ca.pem"))
    assert RedisTarget(name="eu", url="rediss://h:1/0", tls=TlsSettings()).tls == TlsSettings()


def test_start_from_takes_a_word_a_time_or_a_duration_ago() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert resolve_start_from(" Latest ", now=now) == "latest"
    assert resolve_start_from("earliest", now=now) == "earliest"
    assert resolve_start_from("2h", now=now) == now - timedelta(hours=2)
    assert resolve_start_from("2026-11-27T09:00:00Z", now=now) == now - timedelta(hours=3)
