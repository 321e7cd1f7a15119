"""The planner: a pure function from a batch of events to the purges it needs, coalesced."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from contracts.catalogue import BoundNamespace, Catalogue, Namespace
from contracts.errors import ContractError
from contracts.events import Event

Ref = TypeVar("Ref")


@dataclass(frozen=True)
class PurgePlan(Generic[Ref]):
    """What one batch purges: each concrete namespace once, and the events it could not plan."""

    namespaces: tuple[BoundNamespace, ...]
    planned: int
    """How many events were planned (those purging nothing count too)."""
    unplannable: tuple[tuple[Ref, str], ...]
    """(reference, reason) of events whose parameters cannot render a key."""


def purge_plan(events: Iterable[tuple[Ref, Event]], catalogue: Catalogue) -> PurgePlan[Ref]:
    """Plan the purges of a batch.

    events: (reference, event) pairs; the reference (e.g. a record position) comes back with
        every event that could not be planned.
    catalogue: which namespaces each event type purges.
    """
    # Coalesced by (namespace name, key) before any BoundNamespace is built: a batch of a hot
    # company names its namespaces thousands of times and builds each once.
    namespaces: dict[tuple[str, str], Namespace] = {}
    unplannable: list[tuple[Ref, str]] = []
    planned = 0
    for ref, event in events:
        try:
            found = catalogue.purge_keys(event)
        except ContractError as error:
            unplannable.append((ref, str(error)))
            continue
        planned += 1
        for namespace, key in found:
            namespaces[namespace.name, key] = namespace
    bound = tuple(BoundNamespace(namespace, key) for (_, key), namespace in namespaces.items())
    return PurgePlan(bound, planned, tuple(unplannable))
