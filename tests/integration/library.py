"""A second, made-up domain declared the way a service team would: a library's books."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import Field

from contracts import Catalogue, DomainEvent, Namespace, PurgeRule, SafeId

TOPIC = "library.events"


class _BookEvent(DomainEvent):
    aggregate_type: ClassVar[str] = "book"
    aggregate_id_field: ClassVar[str] = "book_id"
    topic: ClassVar[str] = TOPIC

    book_id: SafeId


class BookPublished(_BookEvent):
    """A book appeared, by one or more authors."""

    event_type: ClassVar[str] = "library.BookPublished"

    author_ids: tuple[SafeId, ...] = Field(min_length=1)
    genre: SafeId


class BookRetitled(_BookEvent):
    """A book's title changed."""

    event_type: ClassVar[str] = "library.BookRetitled"

    title: str


AUTHOR_BOOKS = Namespace(
    name="author_books",
    template="author:{author_id}:books",
    owner="library-team",
    description="An author's bibliography page.",
    purged_by=(PurgeRule(BookPublished, {"author_id": "payload.author_ids"}),),
)
BOOK = Namespace(
    name="book",
    template="book:{book_id}",
    owner="library-team",
    description="A book's detail page.",
    ttl=timedelta(days=1),
    purged_by=(
        PurgeRule(BookPublished, {"book_id": "payload.book_id"}),
        PurgeRule(BookRetitled, {"book_id": "payload.book_id"}),
    ),
)
NEW_IN_GENRE = Namespace(
    name="new_in_genre",
    template="genre:{genre}:new",
    owner="library-team",
    description="The newest books of a genre, per tenant.",
    purged_by=(PurgeRule(BookPublished, {"genre": "payload.genre"}),),
)

CATALOGUE = Catalogue([AUTHOR_BOOKS, BOOK, NEW_IN_GENRE])
