"""The topics an invalidator needs: which are missing on the broker, and creating them.

Brokers in production run with `auto.create.topics.enable=false` (the local stack too), so a
topic the catalogue names must be created before the first event is published to it; an
invalidator checks they all exist before it joins its group, instead of retrying forever.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from contracts import topics
from contracts.catalogue import Catalogue
from contracts.errors import MissingTopicsError
from invalidator.operators._offsets import admin_client, until_listed
from invalidator.settings import InvalidatorSettings

_LISTED_WITHIN_S = 30.0
"""How long created topics may take to reach the broker's metadata."""

DEFAULT_PARTITIONS = 6
"""Partitions of a created topic: the most invalidators of one region that can share the work."""


@dataclass(frozen=True, slots=True)
class TopicNeed:
    """A topic the invalidator reads or writes, and why."""

    name: str
    why: str
    mirrored_from: str | None = None
    """The region whose cluster holds the original (MirrorMaker creates this copy and keeps it
    filled); None for a topic of this cluster's own."""


def needed_topics(settings: InvalidatorSettings, catalogue: Catalogue) -> list[TopicNeed]:
    """The catalogue's event topics, the dead-letter topic, then the event topics mirrored from
    the regions of `mirrored_from` (MirrorMaker's to create)."""
    needs = [
        TopicNeed(topic, "events of " + ", ".join(_event_types(catalogue, topic)))
        for topic in catalogue.topics()
    ]
    mirrored = [
        TopicNeed(
            topics.mirrored_topic(source, topic),
            f"events of {source}'s {topic}, mirrored by MirrorMaker",
            mirrored_from=source,
        )
        for source in settings.mirrored_from
        for topic in catalogue.topics()
    ]
    own = TopicNeed(settings.dead_letter_topic, "dead letters (the invalidator's)")
    return [*needs, own, *mirrored]


def _event_types(catalogue: Catalogue, topic: str) -> list[str]:
    return sorted({m.event_type for m in catalogue.schemas.models() if m.topic == topic})


async def missing_topics(settings: InvalidatorSettings, names: list[str]) -> list[str]:
    """Which of `names` do not exist on the broker (in the order given)."""
    async with admin_client(settings.kafka) as admin:
        existing = set(await admin.list_topics())
    return [name for name in names if name not in existing]


async def present_event_topics(settings: InvalidatorSettings, catalogue: Catalogue) -> list[str]:
    """The event topics the operators read (`settings.event_topics`), less the mirrored ones
    MirrorMaker has not created yet: those hold nothing to show, rewind or replay."""
    mirrored = settings.mirrored_topics(catalogue)
    if not mirrored:  # one cluster: nothing to ask the broker
        return settings.event_topics(catalogue)
    absent = set(await missing_topics(settings, mirrored))
    return [topic for topic in settings.event_topics(catalogue) if topic not in absent]


async def require_topics(settings: InvalidatorSettings, catalogue: Catalogue) -> list[str]:
    """Raise MissingTopicsError naming every needed topic of this cluster's own that does not
    exist; return the mirrored topics that do not exist yet (MirrorMaker creates them: the
    invalidator waits for them rather than fail)."""
    needs = needed_topics(settings, catalogue)
    missing = await missing_topics(settings, [need.name for need in needs])
    mirrored = {need.name for need in needs if need.mirrored_from is not None}
    own_missing = [name for name in missing if name not in mirrored]
    if own_missing:
        raise MissingTopicsError(own_missing, bootstrap_servers=settings.kafka.bootstrap_servers)
    return [name for name in missing if name in mirrored]


async def create_topics(
    settings: InvalidatorSettings, names: list[str], *, partitions: int, replication_factor: int
) -> list[str]:
    """Create `names` (those already there are left alone); returns those created, once the
    broker's metadata lists them."""
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
    await until_listed(settings.kafka, created, within=_LISTED_WITHIN_S)
    return created
