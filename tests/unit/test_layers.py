"""Who imports what, read from the source: no import circles, contracts at the bottom, the
invalidator's service apart from its operator tooling, benchmarks and the demo apart from the
tests, and private modules (`_name.py`) imported only from their own package."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("contracts", "producers", "invalidator", "demo", "bench")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    _module_name(path): path for package in PACKAGES for path in (REPO / package).rglob("*.py")
}


def _imported(path: Path) -> Iterator[str]:
    """Every module `path` imports, wherever the import stands (function bodies and
    TYPE_CHECKING blocks included)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            # `from package import module` imports the module.
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _project_imports(module: str) -> set[str]:
    found = set(_imported(MODULES[module]))
    return {name for name in found if name in MODULES or _is_test_module(name)} - {module}


def _is_test_module(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return name.startswith("tests.") and (
        path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()
    )


IMPORTS = {module: _project_imports(module) for module in MODULES}


def test_the_modules_were_found() -> None:
    assert {"contracts.catalogue", "invalidator.cli", "invalidator.operators._offsets"} <= set(
        MODULES
    )


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def test_no_module_is_part_of_an_import_circle() -> None:
    # A package's __init__ only re-exports its own modules, and Python imports it before any of
    # them anyway: a path through one is not followed.
    modules = sorted(module for module in MODULES if not _is_package(module))
    circles = []
    for start in modules:
        stack: list[tuple[str, tuple[str, ...]]] = [(start, (start,))]
        seen = {start}
        while stack:
            module, path = stack.pop()
            for target in sorted(IMPORTS[module]):
                if target == start:
                    circles.append(" -> ".join((*path, target)))
                elif target in MODULES and not _is_package(target) and target not in seen:
                    seen.add(target)
                    stack.append((target, (*path, target)))
    assert circles == []


@pytest.mark.parametrize(
    ("importer", "forbidden"),
    [
        ("contracts", ("producers", "invalidator", "demo", "bench", "tests")),
        ("producers", ("invalidator", "demo", "bench", "tests")),
        ("invalidator", ("producers", "demo", "bench", "tests")),
        ("demo", ("bench", "tests")),
        ("bench", ("tests",)),
    ],
)
def test_imports_point_down(importer: str, forbidden: tuple[str, ...]) -> None:
    wrong = {
        f"{module} imports {target}"
        for module, targets in IMPORTS.items()
        if module.split(".")[0] == importer
        for target in targets
        if target.split(".")[0] in forbidden
    }
    assert wrong == set()


def test_the_service_imports_nothing_of_the_operator_tooling() -> None:
    # cli.py is the command line of both: `run`, and the operator commands beside it.
    service = [
        module
        for module in MODULES
        if module.count(".") == 1
        and module.startswith("invalidator.")
        and module not in ("invalidator.cli", "invalidator.__main__", "invalidator.operators")
    ]
    wrong = {
        f"{module} imports {target}"
        for module in service
        for target in IMPORTS[module]
        if target.startswith("invalidator.operators")
    }
    assert service and wrong == set()


def test_private_modules_are_imported_only_from_their_own_package() -> None:
    wrong = {
        f"{module} imports {target}"
        for module, targets in IMPORTS.items()
        for target in targets
        if target.rsplit(".", 1)[-1].startswith("_")
        and not target.endswith(("__init__", "__main__"))
        and _package_of(module) != target.rsplit(".", 1)[0]
    }
    assert wrong == set()


def _package_of(module: str) -> str:
    return module if _is_package(module) else module.rsplit(".", 1)[0]


TEST_TREE = {_module_name(path): path for path in (REPO / "tests").rglob("*.py")}


def _names_imported(path: Path) -> Iterator[tuple[str, str]]:
    """(module, name) of each `from module import name` in `path`; (module, "") of each
    `import module`."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((alias.name, "") for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield from ((node.module, alias.name) for alias in node.names)


def test_tests_take_their_helpers_from_helper_modules() -> None:
    """No module of the test tree imports from a conftest.py or a test module (a helper two
    tests share goes to a helper module), nor a private name of another; only a conftest may
    take another's fixtures (tests/faults uses those of tests/integration)."""
    wrong = set()
    for module, path in TEST_TREE.items():
        for source, name in _names_imported(path):
            if source.split(".")[0] != "tests":
                continue
            imported = f"{source}.{name}" if f"{source}.{name}" in TEST_TREE else source
            leaf = imported.rsplit(".", 1)[-1]
            from_conftest = leaf == "conftest" and not module.endswith("conftest")
            if leaf.startswith("test_") or from_conftest or name.startswith("_"):
                wrong.add(f"{module} imports {name or imported} from {source}")
    assert "tests.unit.loop_fakes" in TEST_TREE and wrong == set()
