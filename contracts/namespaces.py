"""Namespace declarations: a cache namespace, its key template and purge strategy, the rules by
which events purge it, and a concrete (bound) namespace."""

from __future__ import annotations

import enum
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

from contracts.errors import CatalogueError
from contracts.events import DomainEvent, Event
from contracts.ids import validate_param

TEMPLATE_PARAM = re.compile(r"\{([a-z][a-z0-9_]*)\}")
"""A `{param}` placeholder of a key template; group 1 is the parameter's name."""
_LITERAL = re.compile(r"[A-Za-z0-9_.:\-]*")
_NAME = re.compile(r"[a-z][a-z0-9_]*")


class PurgeStrategy(enum.StrEnum):
    """How a concrete namespace is purged (see ARCHITECTURE.md, the purge protocol)."""

    GENERATION = "generation"
    """Write a new generation token: O(1), no scan; the default."""
    INDEX = "index"
    """A new generation token, and unlink the entries listed in the namespace's index set
    (eager memory reclaim; the client keeps the index as it fills)."""
    EXACT = "exact"
    """Legacy: the rendered key is one Redis key written without the client; unlink it."""
    SCAN = "scan"
    """Legacy: unlink every key under the rendered key (`<key>:*` and the key itself), found
    with an escaped SCAN MATCH on every master: O(keyspace), for keys written without the
    client."""

    @property
    def uses_client_layout(self) -> bool:
        """Whether entries are written by CacheClient (generation-checked, race-safe)."""
        return self in (PurgeStrategy.GENERATION, PurgeStrategy.INDEX)


@dataclass(frozen=True)
class PurgeRule:
    """One way an event type purges a namespace: which event fields fill which parameters.

    Fan-out: declare several rules on one event (an order that moved purges both companies),
    or map a list field (one concrete namespace per element). A rule whose source field is
    None or empty in a given event purges nothing for that event.
    """

    event: type[DomainEvent]
    params: Mapping[str, str]
    """Template parameter -> `payload.<field>` or `envelope.<field>`."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def bindings(self, event: Event) -> list[dict[str, object]]:
        """The parameter values this rule takes from `event`: one dict per concrete namespace."""
        choices: list[list[tuple[str, object]]] = []
        for param, path in self.params.items():
            source, _, name = path.partition(".")
            value = getattr(event.payload if source == "payload" else event.envelope, name)
            values = list(value) if isinstance(value, list | tuple | set | frozenset) else [value]
            present = [(param, v) for v in values if v is not None]
            if not present:
                return []
            choices.append(present)
        return [dict(combination) for combination in itertools.product(*choices)]


@dataclass(frozen=True)
class Namespace:
    """A cache namespace, declared once like an API endpoint.

    name: a short snake_case name, unique in the catalogue.
    template: the key template, e.g. `company:{company_id}:orders`.
    owner: the team that owns the cached read model.
    description: what is cached, in one sentence.
    purged_by: the rules that say which events purge it.
    ttl: the time-to-live backstop of every entry (purges are explicit; this only bounds memory).
    value_schema_version: the version of the cached value's shape; entries of another are misses.
    strategy: how a purge is done.
    single_flight: whether only one caller fills a missing entry at a time; the others wait
        up to `fill_wait` for its value.
    fill_wait: how long single-flight waiters wait for another caller's fill before loading
        themselves (also the fill lock's lifetime).
    serve_stale_while_filling: whether single-flight waiters may get the entry of the previous
        generation, marked stale, instead of waiting (for pages where a few hundred ms of
        staleness is acceptable; off by default).
    fill_hold_off: how long after a purge no fill is stored (for lagging database replicas).
    """

    name: str
    template: str
    owner: str
    description: str
    purged_by: tuple[PurgeRule, ...]
    ttl: timedelta = timedelta(hours=1)
    value_schema_version: int = 1
    strategy: PurgeStrategy = PurgeStrategy.GENERATION
    single_flight: bool = False
    fill_wait: timedelta = timedelta(seconds=1)
    serve_stale_while_filling: bool = False
    fill_hold_off: timedelta = timedelta(0)
    params: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        if _NAME.fullmatch(self.name) is None:
            raise CatalogueError(f"namespace name {self.name!r} must match [a-z][a-z0-9_]*")
        params = tuple(TEMPLATE_PARAM.findall(self.template))
        literal = TEMPLATE_PARAM.sub("", self.template)
        if not params or _LITERAL.fullmatch(literal) is None:
            raise CatalogueError(
                f"namespace {self.name!r}: template {self.template!r} needs at least one "
                "{param} and literal parts of [A-Za-z0-9_.:-] only"
            )
        if len(set(params)) != len(params):
            raise CatalogueError(f"namespace {self.name!r}: a parameter repeats in the template")
        if self.ttl <= timedelta(0):
            raise CatalogueError(f"namespace {self.name!r}: ttl must be positive")
        if self.fill_wait <= timedelta(0) or self.fill_hold_off < timedelta(0):
            raise CatalogueError(
                f"namespace {self.name!r}: fill_wait must be positive, fill_hold_off not negative"
            )
        uses_policies = self.single_flight or self.serve_stale_while_filling or self.fill_hold_off
        if uses_policies and not self.strategy.uses_client_layout:
            raise CatalogueError(
                f"namespace {self.name!r}: single-flight, stale serving and fill hold-off need "
                f"entries written by CacheClient; the {self.strategy} strategy is for legacy keys"
            )
        if self.serve_stale_while_filling and not self.single_flight:
            raise CatalogueError(
                f"namespace {self.name!r}: serve_stale_while_filling needs single_flight=True"
            )
        object.__setattr__(self, "params", params)

    def bind(self, **values: object) -> BoundNamespace:
        """The concrete namespace for these parameter values (each validated as a safe id)."""
        if set(values) != set(self.params):
            raise CatalogueError(
                f"namespace {self.name!r} takes parameters {sorted(self.params)}, "
                f"got {sorted(values)}"
            )
        safe = {p: validate_param(values[p], namespace=self.name, param=p) for p in self.params}
        return BoundNamespace(self, self.render(safe))

    def render(self, safe: Mapping[str, str]) -> str:
        """The key for parameter values that are already validated as safe ids."""
        # The literal parts hold no braces (checked above), so the template is a format string.
        return self.template.format_map(safe)


@dataclass(frozen=True, eq=False)
class BoundNamespace:
    """A concrete namespace, e.g. company 42's orders: its rendered key names the hash tag."""

    namespace: Namespace
    key: str

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BoundNamespace) and (self.namespace.name, self.key) == (
            other.namespace.name,
            other.key,
        )

    def __hash__(self) -> int:
        return hash((self.namespace.name, self.key))

    def __repr__(self) -> str:
        return f"BoundNamespace({self.namespace.name}: {self.key})"
