"""Kafka topic names of the example domain and of the invalidator, and the names MirrorMaker 2
gives them on the other regions' clusters."""

from __future__ import annotations

from collections.abc import Iterable

ORDERS = "orders.events"
"""Events of the Order aggregate, keyed by order."""
COMPANIES = "companies.events"
"""Events of the Company aggregate, keyed by company."""
DEAD_LETTER = "invalidator.dead-letter"
"""Records the invalidator could not decode or plan, with the reason in the headers."""

MIRROR_SEPARATOR = "."
"""What MirrorMaker 2's default replication policy puts between the source cluster's alias and
the topic's name: `orders.events` of cluster `eu` is `eu.orders.events` on the others."""


def mirrored_topic(source: str, topic: str) -> str:
    """The name MirrorMaker 2 gives `topic` of cluster `source` on the clusters it mirrors to.

    source: the source cluster's alias in MirrorMaker's `clusters` (here, its region's name).
    topic: the topic's name on the source cluster.
    """
    return f"{source}{MIRROR_SEPARATOR}{topic}"


def mirror_origin(topic: str, sources: Iterable[str]) -> tuple[str, str] | None:
    """(source cluster, topic on it) of a topic mirrored from one of `sources`; None for a topic
    of the local cluster.

    topic: a topic name as read on this cluster.
    sources: the aliases whose topics are mirrored into this cluster.
    """
    source, separator, original = topic.partition(MIRROR_SEPARATOR)
    if separator and original and source in set(sources):
        return source, original
    return None
