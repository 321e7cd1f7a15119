"""The README's "Use it in your service" is `demo/library_service.py`, word for word, and it works:
its catalogue passes every check and purges each author's page, its outbox write adds the row in
the caller's transaction (SQLite file, no service), its read goes through `get_or_fill`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from contracts import BoundNamespace
from contracts.testing import assert_purges
from demo import library_service
from demo.library_service import CATALOGUE, BookPublished
from producers import CacheClient
from producers.outbox import OUTBOX_TABLE, create_outbox_table

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "demo" / "library_service.py"
BOOK = BookPublished(book_id="b-1", author_ids=("a1", "a2"))


def test_the_readme_shows_the_example_as_it_is() -> None:
    readme = (REPO / "README.md").read_text()
    shown = readme.split("<!-- example: demo/library_service.py -->\n```python\n")[1]
    assert shown.split("```\n")[0] == EXAMPLE.read_text()


def test_the_catalogue_purges_the_page_of_each_author_of_the_book() -> None:
    assert_purges(BOOK, {"author:a1:books", "author:a2:books"}, catalogue=CATALOGUE)


async def test_publishing_adds_the_event_in_the_callers_transaction(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'library.db'}")
    try:
        await create_outbox_table(engine)
        async with engine.connect() as db:
            rolled_back = await db.begin()
            await library_service.publish_book(db, BOOK, version=1)
            await rolled_back.rollback()
        async with engine.begin() as db:
            await library_service.publish_book(db, BOOK, version=2)
        async with engine.connect() as db:
            rows = (await db.execute(select(OUTBOX_TABLE.c.topic))).all()
    finally:
        await engine.dispose()
    assert [row.topic for row in rows] == ["library.events"]


async def test_a_page_is_read_through_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str]] = []

    class Cache:
        async def get_or_fill(
            self, namespace: BoundNamespace, entry: str, load: Callable[[], Awaitable[bytes]]
        ) -> bytes:
            asked.append((namespace.key, entry))
            return await load()

    async def load() -> bytes:
        return b"a1's books"

    assert isinstance(library_service.CACHE, CacheClient)
    monkeypatch.setattr(library_service, "CACHE", Cache())
    assert await library_service.author_page("a1", load) == b"a1's books"
    assert asked == [("author:a1:books", "page:1")]
