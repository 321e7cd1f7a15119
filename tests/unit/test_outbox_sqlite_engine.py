"""`sqlite_engine`: every connection in write-ahead logging with the synchronous level asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.outbox import sqlite_engine
from producers.outbox.sqlite import SqliteSync

_SYNCHRONOUS_LEVELS = {"NORMAL": 1, "FULL": 2}
"""`PRAGMA synchronous`'s answers."""


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
async def test_every_connection_is_set_up(tmp_path: Path, synchronous: SqliteSync) -> None:
    engine = sqlite_engine(
        f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}", synchronous=synchronous, pool_size=2
    )
    try:
        async with engine.connect() as first, engine.connect() as second:
            for connection in (first, second):
                mode = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
                level = (await connection.exec_driver_sql("PRAGMA synchronous")).scalar()
                assert (mode, level) == ("wal", _SYNCHRONOUS_LEVELS[synchronous])
    finally:
        await engine.dispose()


def test_an_unknown_level_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="write NORMAL or FULL"):
        sqlite_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}", synchronous="OFF")  # type: ignore[arg-type]
