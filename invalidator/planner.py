"""The planner: a pure function from a batch of events to the purges it needs, coalesced."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Generic, TypeVar

from contracts.catalogue import Catalogue
from contracts.errors import ContractError
from contracts.events import Event
from contracts.namespaces import BoundNamespace, Namespace

Ref = TypeVar("Ref")

NamespaceKeys = tuple[tuple[Namespace, tuple[str, ...]], ...]
"""Concrete namespaces grouped by their declaration: (namespace, its rendered keys)."""


def grouped(namespaces: Iterable[BoundNamespace]) -> NamespaceKeys:
    """`namespaces` grouped by declaration (the form the purge engine takes), no repeats."""
    return _grouped_keys((bound.namespace, bound.key) for bound in namespaces)


def _grouped_keys(pairs: Iterable[tuple[Namespace, str]]) -> NamespaceKeys:
    """(namespace, rendered key) pairs grouped by declaration, each key once, in first-seen
    order. Keys are coalesced as plain strings: a batch of a hot company names its namespaces
    thousands of times, and the purge engine handles a declaration's keys at once."""
    keys: dict[str, tuple[Namespace, dict[str, None]]] = {}
    for namespace, key in pairs:
        group = keys.get(namespace.name)
        if group is None:
            group = keys[namespace.name] = (namespace, {})
        group[1][key] = None
    return tuple((namespace, tuple(found)) for namespace, found in keys.values())


@dataclass(frozen=True)
class PurgePlan(Generic[Ref]):
    """What one batch purges: each concrete namespace once, and the events it could not plan."""

    by_namespace: NamespaceKeys
    """Each purged namespace declaration with the keys it purges, each key once."""
    planned: int
    """How many events were planned (those purging nothing count too)."""
    unplannable: tuple[tuple[Ref, str], ...]
    """(reference, reason) of events whose parameters cannot render a key, or whose planning
    raised."""

    @cached_property
    def namespaces(self) -> tuple[BoundNamespace, ...]:
        """Every concrete namespace the batch purges, each once."""
        return tuple(BoundNamespace(ns, key) for ns, keys in self.by_namespace for key in keys)

    @cached_property
    def size(self) -> int:
        """How many concrete namespaces the batch purges."""
        return sum(len(keys) for _, keys in self.by_namespace)


def purge_plan(events: Iterable[tuple[Ref, Event]], catalogue: Catalogue) -> PurgePlan[Ref]:
    """Plan the purges of a batch.

    events: (reference, event) pairs; the reference (e.g. a record position) comes back with
        every event that could not be planned.
    catalogue: which namespaces each event type purges.
    """
    pairs: list[tuple[Namespace, str]] = []
    unplannable: list[tuple[Ref, str]] = []
    planned = 0
    for ref, event in events:
        try:
            pairs += catalogue.purge_keys(event)
        except ContractError as error:
            unplannable.append((ref, str(error)))
            continue
        except Exception as error:  # a defect in a rule: this event only, never the loop
            unplannable.append((ref, f"planning raised {type(error).__name__}: {error}"))
            continue
        planned += 1
    return PurgePlan(_grouped_keys(pairs), planned, tuple(unplannable))


def merged_plans(plans: Sequence[PurgePlan[Ref]]) -> PurgePlan[Ref]:
    """Plans of consecutive batches as one: each concrete namespace once."""
    return PurgePlan(
        _grouped_keys(
            (namespace, key)
            for plan in plans
            for namespace, found in plan.by_namespace
            for key in found
        ),
        sum(plan.planned for plan in plans),
        tuple(item for plan in plans for item in plan.unplannable),
    )
