"""Every requirement in pyproject.toml has an upper bound, so a new major release cannot break
an install; the packaging test resolves a fresh venv within these bounds."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
UPPER = {"<", "<=", "==", "~=", "==="}


def _requirements() -> list[Requirement]:
    config = tomllib.loads(PYPROJECT.read_text())
    project = config["project"]
    lines = [*config["build-system"]["requires"], *project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        lines.extend(extra)
    # The extras that pull in another extra of this project name the project itself.
    return [r for r in map(Requirement, lines) if r.name != project["name"]]


def test_every_requirement_has_an_upper_bound() -> None:
    requirements = _requirements()
    unbounded = [str(r) for r in requirements if not any(s.operator in UPPER for s in r.specifier)]
    assert len(requirements) > 10
    assert unbounded == []
