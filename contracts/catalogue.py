"""The namespace catalogue: every namespace of a deployment, checked, and the index from event
type to the namespaces it purges."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass

from contracts.checks import catalogue_problems
from contracts.decoding import EventSchemas
from contracts.errors import CatalogueError, SettingsError
from contracts.events import DomainEvent, Event, EventMetadata, holds_safe_id
from contracts.ids import validate_param
from contracts.namespaces import BoundNamespace, Namespace, PurgeRule


@dataclass(frozen=True, slots=True)
class _ParamSource:
    param: str
    in_payload: bool
    attribute: str
    checked: bool
    """The field is a SafeId: its values were validated with the event, not again per key."""


_AffixedRule = tuple[Namespace, str, str, bool, str]
"""(namespace, prefix, suffix, whether the field is the payload's, the field): a rule whose key
is prefix + the field's value + suffix."""


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

    def affixed(self) -> _AffixedRule | None:
        """The rule as `_AffixedRule` when its key is prefix + one SafeId field + suffix."""
        if self.affixes is None:
            return None
        source = self.sources[0]
        return (self.namespace, *self.affixes, source.in_payload, source.attribute)

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
        problems = catalogue_problems(self.namespaces, extra)
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
        self._affixed: dict[str, tuple[_AffixedRule, ...]] = {}
        for event_type, rules in self._rules.items():
            latest = self.schemas.latest(event_type)
            assert latest is not None  # every rule's event is one of the schemas
            compiled = tuple(_CompiledRule(ns, r, latest) for ns, r in rules)
            self._compiled[event_type] = compiled
            affixed = [rule.affixed() for rule in compiled]
            if all(rule is not None for rule in affixed):
                self._affixed[event_type] = tuple(rule for rule in affixed if rule is not None)

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
        affixed = self._affixed.get(event.envelope.type)
        if affixed is not None:
            # Every rule of the type renders prefix + one SafeId field + suffix: one pass.
            payload, envelope = event.payload, event.envelope
            pairs = []
            for namespace, prefix, suffix, in_payload, attribute in affixed:
                value = getattr(payload if in_payload else envelope, attribute)
                if type(value) is not str:
                    break  # None or a list: the rules themselves say what that renders
                pairs.append((namespace, prefix + value + suffix))
            else:
                return pairs
        return [
            (rule.namespace, key)
            for rule in self._compiled.get(event.envelope.type, ())
            for key in rule.keys(event)
        ]


def import_catalogue(path: str, *, setting: str) -> Catalogue:
    """The catalogue `path` names (`package.module:attribute`), imported: its checks run as it
    is built.

    path: where the catalogue is. setting: what gave the path (an environment variable, an ini
        option), named in the message when it names no catalogue.
    Raises CatalogueError when the declarations fail a check, SettingsError when `path` cannot
    be imported or is not a Catalogue.
    """
    module_name, _, attribute = path.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except CatalogueError:
        raise  # the declarations themselves are wrong: their own message says how
    except (ImportError, AttributeError, ValueError) as error:
        raise SettingsError(
            f"{setting}={path!r} cannot be loaded ({error}); write package.module:attribute"
        ) from None
    if not isinstance(found, Catalogue):
        raise SettingsError(
            f"{setting}={path!r} is a {type(found).__name__}, not a contracts.Catalogue"
        )
    return found
