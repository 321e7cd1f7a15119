"""Each package's public surface is its `__all__`: exactly what its `__init__` imports, every
name documented."""

from __future__ import annotations

import importlib
import inspect
import types

import pytest

PACKAGES = ("contracts", "producers", "producers.outbox", "invalidator", "invalidator.operators")


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_exactly_what_the_package_imports(name: str) -> None:
    package = importlib.import_module(name)
    exported = list(package.__all__)
    assert exported == sorted(set(exported)), "keep __all__ sorted, each name once"
    imported = {
        attribute
        for attribute, value in vars(package).items()
        if not attribute.startswith("_")
        and not isinstance(value, types.ModuleType)
        and attribute != "annotations"
    }
    assert imported == set(exported)


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_class_and_function_has_a_docstring(name: str) -> None:
    package = importlib.import_module(name)
    undocumented = [
        attribute
        for attribute in package.__all__
        if (inspect.isclass(value := getattr(package, attribute)) or inspect.isfunction(value))
        and not inspect.getdoc(value)
    ]
    assert package.__doc__ and undocumented == []
