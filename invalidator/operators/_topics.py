"""The topics an invalidator needs: which are missing on the broker, and creating them.

Brokers in production run with `auto.create.topics.enable=false` (the local stack too), so a
topic the catalogue names must be created before the first event is published to it; an
invalidator checks they all exist before it joins its group, instead of retrying forever.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from contracts.catalogue import Catalogue
from contracts.errors import MissingTopicsError
from invalidator.operators._offsets import admin_client
from invalidator.settings import InvalidatorSettings

DEFAULT_PARTITIONS = 6
"""Partitions of a created topic: the most invalidators of one region that can share the work."""


@dataclass(frozen=True, slots=True)
class TopicNeed:
    """A topic the invalidator reads or writes, and why."""

    name: str
    why: str


def needed_topics(settings: InvalidatorSettings, catalogue: Catalogue) -> list[TopicNeed]:
    """The catalogue's event topics, then the dead-letter topic."""
    needs = [
        TopicNeed(topic, "events of " + ", ".join(_event_types(catalogue, topic)))
        for topic in catalogue.topics()
    ]
    return [*needs, TopicNeed(settings.dead_letter_topic, "dead letters (the invalidator's)")]


def _event_types(catalogue: Catalogue, topic: str) -> list[str]:
    return sorted({m.event_type for m in catalogue.schemas.models() if m.topic == topic})


async def missing_topics(settings: InvalidatorSettings, names: list[str]) -> list[str]:
    """Which of `names` do not exist on the broker (in the order given)."""
    async with admin_client(settings.kafka) as admin:
        existing = set(await admin.list_topics())
    return [name for name in names if name not in existing]


async def require_topics(settings: InvalidatorSettings, catalogue: Catalogue) -> None:
    """Raise MissingTopicsError naming every needed topic that does not exist."""
    missing = await missing_topics(
        settings, [need.name for need in needed_topics(settings, catalogue)]
    )
    if missing:
        raise MissingTopicsError(missing, bootstrap_servers=settings.kafka.bootstrap_servers)


async def create_topics(
    settings: InvalidatorSettings, names: list[str], *, partitions: int, replication_factor: int
) -> list[str]:
    """Create `names` (those already there are left alone); returns those created."""
    async with admin_client(settings.kafka) as admin:
        existing = set(await admin.list_topics())
        wanted = [name for name in names if name not in existing]
        if not wanted:
            return []
        response = await admin.create_topics(
            [NewTopic(name, partitions, replication_factor) for name in wanted]
        )
    created = []
    for name, code, *detail in response.topic_errors:
        if code and for_code(code) is not TopicAlreadyExistsError:
            raise for_code(code)(f"creating topic {name}: {detail[-1] if detail else code}")
        if not code:
            created.append(name)
    return created
