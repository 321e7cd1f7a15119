"""A catalogue whose topic is never created, for the start-up tests."""

from __future__ import annotations

from typing import ClassVar

from contracts import Catalogue, DomainEvent, Namespace, PurgeRule, SafeId

TOPIC = "startup-test.never-created"


class ShelfMoved(DomainEvent):
    """A shelf moved (published to a topic nobody created)."""

    event_type: ClassVar[str] = "startup.ShelfMoved"
    aggregate_type: ClassVar[str] = "shelf"
    aggregate_id_field: ClassVar[str] = "shelf_id"
    topic: ClassVar[str] = TOPIC

    shelf_id: SafeId


CATALOGUE = Catalogue(
    [
        Namespace(
            name="shelf",
            template="shelf:{shelf_id}",
            owner="tests",
            description="A shelf page.",
            purged_by=(PurgeRule(ShelfMoved, {"shelf_id": "payload.shelf_id"}),),
        )
    ]
)
