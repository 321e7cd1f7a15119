"""The namespace catalogue: every cache namespace, its key template and its invalidation plan."""

from __future__ import annotations

import enum
import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

from contracts.checks import catalogue_problems
from contracts.decoding import EventSchemas
from contracts.errors import CatalogueError
from contracts.events import DomainEvent, Event, EventMetadata, holds_safe_id
from contracts.ids import validate_param

_PARAM = re.compile(r"\{([a-z][a-z0-9_]*)\}")
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
        params = tuple(_PARAM.findall(self.template))
        literal = _PARAM.sub("", self.template)
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


@dataclass(frozen=True, slots=True)
class _ParamSource:
    param: str
    in_payload: bool
    attribute: str
    checked: bool
    """The field is a SafeId: its values were validated with the event, not again per key."""


class _CompiledRule:
    """One purge rule prepared for the hot path: the keys it renders for an event."""

    __slots__ = ("affixes", "namespace", "rule", "sources")

    def __init__(self, namespace: Namespace, rule: PurgeRule, model: type[DomainEvent]) -> None:
        self.namespace = namespace
        self.rule = rule
        sources = []
        for param, path in rule.params.items():
            source, _, attribute = path.partition(".")
            fields = (model if source == "payload" else EventMetadata).model_fields
            field = fields.get(attribute)
            checked = field is not None and holds_safe_id(field)
            sources.append(_ParamSource(param, source == "payload", attribute, checked))
        self.sources = tuple(sources)
        # One SafeId parameter (the common case): the key is prefix + value + suffix.
        self.affixes: tuple[str, str] | None = None
        if len(sources) == 1 and sources[0].checked:
            prefix, _, suffix = namespace.template.partition("{" + sources[0].param + "}")
            self.affixes = (prefix, suffix)

    def keys(self, event: Event) -> list[str]:
        if self.affixes is not None:
            source = self.sources[0]
            value = getattr(
                event.payload if source.in_payload else event.envelope, source.attribute
            )
            if type(value) is str:
                return [self.affixes[0] + value + self.affixes[1]]
        values: dict[str, str] = {}
        for source in self.sources:
            holder = event.payload if source.in_payload else event.envelope
            value = getattr(holder, source.attribute)
            if value is None:
                return []
            if isinstance(value, list | tuple | set | frozenset):
                return [self.namespace.bind(**b).key for b in self.rule.bindings(event)]
            values[source.param] = (
                value
                if source.checked
                else validate_param(value, namespace=self.namespace.name, param=source.param)
            )
        return [self.namespace.render(values)]


class Catalogue:
    """Every namespace of a deployment and the index from event type to what it purges.

    Building one runs every check (`contracts.checks`) and raises a `CatalogueError` listing
    all the problems at once.
    """

    def __init__(
        self, namespaces: Iterable[Namespace], *, events: Iterable[type[DomainEvent]] = ()
    ) -> None:
        """namespaces: the declarations.
        events: event models to know besides those the rules name: older schema versions
            (decoded, then upcast) and events that purge nothing.
        """
        self.namespaces: tuple[Namespace, ...] = tuple(namespaces)
        extra = tuple(events)
        problems = catalogue_problems(self.namespaces, extra, param_pattern=_PARAM)
        if problems:
            raise CatalogueError(
                "the catalogue has problems:\n" + "\n".join(f"  - {p}" for p in problems)
            )
        self._by_name = {namespace.name: namespace for namespace in self.namespaces}
        self._rules: dict[str, list[tuple[Namespace, PurgeRule]]] = {}
        models: dict[tuple[str, int], type[DomainEvent]] = {
            (m.event_type, m.schema_version): m for m in extra
        }
        for namespace in self.namespaces:
            for rule in namespace.purged_by:
                models[(rule.event.event_type, rule.event.schema_version)] = rule.event
                self._rules.setdefault(rule.event.event_type, []).append((namespace, rule))
        self.schemas = EventSchemas(models.values())
        self._compiled: dict[str, tuple[_CompiledRule, ...]] = {}
        for event_type, rules in self._rules.items():
            latest = self.schemas.latest(event_type)
            assert latest is not None  # every rule's event is one of the schemas
            self._compiled[event_type] = tuple(_CompiledRule(ns, r, latest) for ns, r in rules)

    def namespace(self, name: str) -> Namespace:
        """The namespace called `name`."""
        try:
            return self._by_name[name]
        except KeyError:
            raise CatalogueError(
                f"no namespace {name!r}; known: {', '.join(sorted(self._by_name))}"
            ) from None

    def topics(self) -> list[str]:
        """Every topic an event of this catalogue is published to."""
        return sorted({model.topic for model in self.schemas.models()})

    def rules_for(self, event_type: str) -> list[tuple[Namespace, PurgeRule]]:
        """The (namespace, rule) pairs through which events of `event_type` purge."""
        return list(self._rules.get(event_type, ()))

    def purges_for(self, event: Event) -> list[BoundNamespace]:
        """The concrete namespaces that `event` makes stale, in declaration order, no repeats."""
        found = {(ns.name, key): ns for ns, key in self.purge_keys(event)}
        return [BoundNamespace(namespace, key) for (_, key), namespace in found.items()]

    def purge_keys(self, event: Event) -> list[tuple[Namespace, str]]:
        """(namespace, rendered key) of everything `event` makes stale, in declaration order;
        a pair may repeat. The planner's hot path: rules are compiled once per event type.

        Raises NamespaceParamError when a value the event carries cannot render a key.
        """
        return [
            (rule.namespace, key)
            for rule in self._compiled.get(event.envelope.type, ())
            for key in rule.keys(event)
        ]
