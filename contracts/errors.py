"""The exception hierarchy shared by producers and the invalidator; each error says what to do."""

from __future__ import annotations


class ContractError(ValueError):
    """Base of every error raised by the contracts package."""


class NamespaceParamError(ContractError):
    """A namespace parameter value would break or widen a Redis key."""

    def __init__(self, *, namespace: str, param: str, value: object, allowed: str) -> None:
        self.namespace = namespace
        self.param = param
        self.value = value
        super().__init__(f"namespace {namespace!r}: {param}={value!r} may only contain {allowed}")


class EntryNameError(ContractError):
    """An entry name inside a namespace would break or widen a Redis key."""

    def __init__(self, *, namespace: str, entry: str, allowed: str) -> None:
        self.namespace = namespace
        self.entry = entry
        super().__init__(f"namespace {namespace!r}: entry {entry!r} may only contain {allowed}")


class CatalogueError(ContractError):
    """The namespace catalogue is inconsistent; the message names the namespace and the fix."""
