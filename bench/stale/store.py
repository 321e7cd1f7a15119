"""The source of truth of the harness: hot items in a real SQLite database, each with a version."""

from __future__ import annotations

import json
import sqlite3


class ItemStore:
    """Items whose every write bumps a version in one committed transaction.

    One in-memory SQLite connection, used from one event loop: every call is synchronous and
    short, so a write's commit and the reads around it are ordered by the loop itself.
    """

    def __init__(self, item_ids: list[str]) -> None:
        """item_ids: the items to seed, each at version 0."""
        self._db = sqlite3.connect(":memory:", isolation_level=None)
        self._db.execute(
            "CREATE TABLE items (id TEXT PRIMARY KEY, version INTEGER NOT NULL, body TEXT NOT NULL)"
        )
        with self._db:
            self._db.executemany(
                "INSERT INTO items VALUES (?, 0, ?)",
                [(item, _body(item, 0)) for item in item_ids],
            )

    def write(self, item: str) -> int:
        """Bump `item`'s version and rewrite its body in one transaction; the new version."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            (version,) = self._db.execute(
                "UPDATE items SET version = version + 1 WHERE id = ? RETURNING version", (item,)
            ).fetchone()
            self._db.execute("UPDATE items SET body = ? WHERE id = ?", (_body(item, version), item))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return int(version)

    def read(self, item: str) -> bytes:
        """The read model of `item` as cached: its body, carrying the version it was built from."""
        (body,) = self._db.execute("SELECT body FROM items WHERE id = ?", (item,)).fetchone()
        return str(body).encode()

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def _body(item: str, version: int) -> str:
    return json.dumps({"item": item, "version": version})


def value_version(value: bytes) -> int:
    """The version a cached value was built from."""
    version: int = json.loads(value)["version"]
    return version
