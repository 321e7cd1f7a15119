"""The catalogue's checks: every problem found, each naming the namespace or event and the fix."""

from __future__ import annotations

import types
import typing
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic.fields import FieldInfo

from contracts.events import DomainEvent, EventEnvelope
from contracts.namespaces import TEMPLATE_PARAM, Namespace, PurgeRule

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_KEY_SAFE_TYPES = (str, int, uuid.UUID)
_COLLECTIONS = (list, tuple, set, frozenset)


def event_problems(model: type[DomainEvent]) -> list[str]:
    """What is missing from an event model's declaration."""
    name = getattr(model, "__name__", repr(model))
    if not (isinstance(model, type) and issubclass(model, DomainEvent)):
        return [f"{name} is not a contracts.DomainEvent subclass"]
    problems = [
        f"event {name}: declare the class variable {attribute}"
        for attribute in ("event_type", "aggregate_type", "aggregate_id_field", "topic")
        if not isinstance(getattr(model, attribute, None), str)
    ]
    field = getattr(model, "aggregate_id_field", None)
    if isinstance(field, str) and field not in model.model_fields:
        problems.append(f"event {name}: aggregate_id_field {field!r} is not one of its fields")
    return problems


def rule_problems(namespace: Namespace, rule: PurgeRule) -> list[str]:
    """Whether `rule` fills exactly the namespace's parameters from fields of compatible type."""
    where = (
        f"namespace {namespace.name!r}, rule for {getattr(rule.event, 'event_type', rule.event)}"
    )
    problems = []
    if set(rule.params) != set(namespace.params):
        problems.append(
            f"{where}: maps {sorted(rule.params)} but the template needs {sorted(namespace.params)}"
        )
    for param, path in rule.params.items():
        source, _, name = path.partition(".")
        if source not in ("payload", "envelope") or not name:
            problems.append(
                f"{where}: {param} maps to {path!r}; write 'payload.<field>' or 'envelope.<field>'"
            )
            continue
        fields = rule.event.model_fields if source == "payload" else EventEnvelope.model_fields
        if name not in fields:
            owner = rule.event.__name__ if source == "payload" else "the envelope"
            problems.append(f"{where}: {param} maps to {path}, a field {owner} does not have")
        elif not _renders_in_a_key(fields[name]):
            problems.append(
                f"{where}: {param} maps to {path} of type {fields[name].annotation}; "
                "use str, int, SafeId or UUID (optionally in a list, or Optional)"
            )
    return problems


def _renders_in_a_key(field: FieldInfo) -> bool:
    return _key_safe(field.annotation, allow_collection=True)


def _key_safe(annotation: Any, *, allow_collection: bool) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _key_safe(typing.get_args(annotation)[0], allow_collection=allow_collection)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(members) and all(
            _key_safe(a, allow_collection=allow_collection) for a in members
        )
    if origin in _COLLECTIONS and allow_collection:
        return all(
            _key_safe(a, allow_collection=False)
            for a in typing.get_args(annotation)
            if a is not Ellipsis
        )
    if origin is typing.Literal:
        return all(
            isinstance(v, str | int) and not isinstance(v, bool)
            for v in typing.get_args(annotation)
        )
    return (
        isinstance(annotation, type)
        and issubclass(annotation, _KEY_SAFE_TYPES)
        and annotation is not bool
    )


def colliding_key(template_a: str, template_b: str) -> str | None:
    """A key both templates can render (ids: one or more of [A-Za-z0-9_.-]), or None if none."""
    a, b = _tokens(template_a), _tokens(template_b)
    symbols = [*sorted({t for t in (*a, *b) if t is not None} | {":"}), _spare_id_char(a, b)]
    start = (_closure(a, (0, False)), _closure(b, (0, False)))
    seen = {start: ""}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        if _accepts(a, state[0]) and _accepts(b, state[1]):
            return seen[state]
        for symbol in symbols:
            step = (_step(a, state[0], symbol), _step(b, state[1], symbol))
            if step[0] and step[1] and step not in seen:
                seen[step] = seen[state] + symbol
                queue.append(step)
    return None


# A template is a sequence of tokens: a literal character, or None for a parameter (one or more
# id characters). NFA positions are (index, inside_parameter).
_Position = tuple[int, bool]


def _tokens(template: str) -> list[str | None]:
    tokens: list[str | None] = []
    for index, part in enumerate(TEMPLATE_PARAM.split(template)):
        if index % 2:
            tokens.append(None)
        else:
            tokens.extend(part)
    return tokens


def _spare_id_char(a: Sequence[str | None], b: Sequence[str | None]) -> str:
    used = {t for t in (*a, *b) if t is not None}
    return next(c for c in sorted(_ID_CHARS) if c not in used)


def _closure(tokens: Sequence[str | None], position: _Position) -> frozenset[_Position]:
    found = {position}
    index, inside = position
    if inside:
        found.add((index + 1, False))
    return frozenset(found)


def _step(
    tokens: Sequence[str | None], states: frozenset[_Position], symbol: str
) -> frozenset[_Position]:
    following: set[_Position] = set()
    for index, inside in states:
        if inside:
            if symbol in _ID_CHARS:
                following |= _closure(tokens, (index, True))
            continue
        if index >= len(tokens):
            continue
        token = tokens[index]
        if token is None and symbol in _ID_CHARS:
            following |= _closure(tokens, (index, True))
        elif token == symbol:
            following.add((index + 1, False))
    return frozenset(following)


def _accepts(tokens: Sequence[str | None], states: frozenset[_Position]) -> bool:
    return (len(tokens), False) in states


def catalogue_problems(
    namespaces: Sequence[Namespace], events: Iterable[type[DomainEvent]]
) -> list[str]:
    """Every problem of a catalogue; empty when it is sound.

    namespaces: the declarations.
    events: event models known besides those the rules name (older versions, purge-nothing).
    """
    problems: list[str] = []
    models = {id(model): model for model in events}
    names: set[str] = set()
    for namespace in namespaces:
        if namespace.name in names:
            problems.append(f"namespace {namespace.name!r} is declared twice")
        names.add(namespace.name)
        if not namespace.purged_by:
            problems.append(
                f"namespace {namespace.name!r} has no purging event: add a PurgeRule, or it "
                "would only ever expire by TTL"
            )
        for rule in namespace.purged_by:
            models[id(rule.event)] = rule.event
            if not event_problems(rule.event):
                problems.extend(rule_problems(namespace, rule))
    for model in models.values():
        problems.extend(event_problems(model))
    problems.extend(_duplicate_version_problems(list(models.values())))
    problems.extend(_upcast_problems(list(models.values())))
    for index, first in enumerate(namespaces):
        for second in namespaces[index + 1 :]:
            example = colliding_key(first.template, second.template)
            if example is not None:
                problems.append(
                    f"namespaces {first.name!r} and {second.name!r} can render the same key "
                    f"(e.g. {example!r}): add a distinct literal to one template"
                )
    return problems


def _duplicate_version_problems(models: Sequence[type[DomainEvent]]) -> list[str]:
    # The decoder keeps one model per (type, version): a second class would silently replace
    # the first, and events that validate only against the first would be dead-lettered.
    declared: dict[tuple[str, int], list[type[DomainEvent]]] = {}
    for model in models:
        event_type = getattr(model, "event_type", None)
        if isinstance(event_type, str):
            declared.setdefault((event_type, model.schema_version), []).append(model)
    return [
        f"event {event_type} v{version} is declared by {len(classes)} classes ("
        + ", ".join(f"{c.__module__}.{c.__qualname__}" for c in classes)
        + "): keep one class per type and version (give a changed schema a new schema_version "
        "and an upcast())"
        for (event_type, version), classes in declared.items()
        if len(classes) > 1
    ]


def _upcast_problems(models: Sequence[type[DomainEvent]]) -> list[str]:
    newest: dict[str, int] = {}
    for model in models:
        event_type = getattr(model, "event_type", None)
        if isinstance(event_type, str):
            newest[event_type] = max(newest.get(event_type, 0), model.schema_version)
    return [
        f"event {model.__name__} ({model.event_type} v{model.schema_version}) is older than "
        f"v{newest[model.event_type]} but does not override upcast()"
        for model in models
        if isinstance(getattr(model, "event_type", None), str)
        and model.schema_version < newest[model.event_type]
        and model.upcast is DomainEvent.upcast
    ]
