"""Validation of the identifiers that end up inside Redis keys.

An id can never act as a glob pattern (`* ? [ ] \\`), open or close a hash tag (`{ }`), contain
the key separator `:` or whitespace, or be empty: the key it renders matches only itself.
"""

from __future__ import annotations

import re

from contracts.errors import EntryNameError, NamespaceParamError

ID_ALLOWED = "[A-Za-z0-9_.-] (1 to 128 characters)"
ID_PATTERN = r"^[A-Za-z0-9_.\-]{1,128}$"
"""The id rule as a regular expression (JSON Schema `pattern`, pydantic's `StringConstraints`)."""
_ID = re.compile(ID_PATTERN)

ENTRY_ALLOWED = "[A-Za-z0-9_.:=,-] (1 to 256 characters)"
_ENTRY = re.compile(r"[A-Za-z0-9_.:=,\-]{1,256}")


def is_valid_id(value: str) -> bool:
    """Whether `value` is a safe id (see the module docstring)."""
    return _ID.fullmatch(value) is not None


def validate_param(value: object, *, namespace: str, param: str) -> str:
    """Return `value` as a key-safe string or raise `NamespaceParamError`.

    value: an int or a str; bools and other types are refused.
    namespace: the namespace name, for the error message.
    param: the template parameter name, for the error message.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise NamespaceParamError(namespace=namespace, param=param, value=value, allowed=ID_ALLOWED)
    text = str(value)
    if _ID.fullmatch(text) is None:
        raise NamespaceParamError(namespace=namespace, param=param, value=value, allowed=ID_ALLOWED)
    return text


def validate_entry(entry: str, *, namespace: str) -> str:
    """Return `entry` (the part of a key after the namespace) or raise `EntryNameError`.

    entry: the entry name chosen by the service, e.g. `page:1`.
    namespace: the namespace name, for the error message.
    """
    if not isinstance(entry, str) or _ENTRY.fullmatch(entry) is None:
        raise EntryNameError(namespace=namespace, entry=entry, allowed=ENTRY_ALLOWED)
    return entry
