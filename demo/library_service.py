# demo/library_service.py (tests/unit/test_readme_example.py runs it)
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import Catalogue, DomainEvent, Namespace, PurgeRule, RedisTarget, SafeId
from producers import CacheClient, connect_redis
from producers.outbox import add_event


class BookPublished(DomainEvent):  # 1. the event: a typed, versioned schema
    event_type: ClassVar[str] = "library.BookPublished"
    aggregate_type: ClassVar[str] = "book"
    aggregate_id_field: ClassVar[str] = "book_id"  # the Kafka key: one book's events in order
    topic: ClassVar[str] = "library.events"
    book_id: SafeId  # ids: [A-Za-z0-9_.-], checked
    author_ids: tuple[SafeId, ...]


AUTHOR_BOOKS = Namespace(  # 2. the namespace: its key, owner and invalidation plan
    name="author_books",
    template="author:{author_id}:books",
    owner="library-team",
    description="An author's bibliography page.",
    ttl=timedelta(hours=1),  # a backstop, not the plan
    purged_by=(PurgeRule(BookPublished, {"author_id": "payload.author_ids"}),),  # each author
)
CATALOGUE = Catalogue([AUTHOR_BOOKS])  # runs every check; INVALIDATOR_CATALOGUE names it


async def publish_book(db: AsyncConnection, book: BookPublished, version: int) -> None:
    """3. In the write's own transaction: committed together with it, or neither."""
    await add_event(db, book, source="library-api", tenant="acme", aggregate_version=version)


CACHE = CacheClient(connect_redis(RedisTarget(name="eu", url="redis://127.0.0.1:16379/0")))


async def author_page(author_id: str, load: Callable[[], Awaitable[bytes]]) -> bytes:
    """4. Read through the cache: a fill that raced a purge is never stored."""
    return await CACHE.get_or_fill(AUTHOR_BOOKS.bind(author_id=author_id), "page:1", load)
