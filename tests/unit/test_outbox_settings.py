"""The relay's settings and command: a bad value stops it with a message, never a password."""

from __future__ import annotations

import pytest

from producers.outbox.cli import main
from producers.outbox.table import ddl


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h/db", "write postgresql+asyncpg://"),
        ("mysql+aiomysql://u@h/db", "write postgresql+asyncpg://"),
        ("postgresql+asyncpg://u:hunter2@h/db", "OUTBOX_DATABASE_PASSWORD"),
    ],
)
def test_a_bad_database_url_is_refused_naming_the_fix_without_echoing_it(
    url: str,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OUTBOX_DATABASE_URL", url)
    assert main(["relay"]) == 2
    err = capsys.readouterr().err
    assert "OUTBOX_DATABASE_URL" in err and expected in err
    assert "hunter2" not in err and url not in err


def test_a_missing_database_url_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OUTBOX_DATABASE_URL", raising=False)
    assert main(["init"]) == 2
    assert "OUTBOX_DATABASE_URL: Field required" in capsys.readouterr().err


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_the_ddl_creates_the_table_and_the_pending_index(dialect: str) -> None:
    statements = ddl(dialect)
    assert "CREATE TABLE event_outbox" in statements
    pending_index = "ix_event_outbox_pending ON event_outbox (id) WHERE published_at IS NULL"
    assert f"CREATE INDEX {pending_index}" in statements
