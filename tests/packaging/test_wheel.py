"""`python -m build` makes an sdist and, from it, a wheel; a fresh venv that installs the wheel
from PyPI (within the declared bounds) runs the commands."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from contracts.example_orders import EXAMPLE_CATALOGUE

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"contracts", "producers", "invalidator"}
INSTALL_TIMEOUT_S = 300  # a cold pip cache downloads every dependency


@dataclass(frozen=True)
class Distribution:
    """The files `python -m build` wrote."""

    wheel: Path
    sdist: Path


@pytest.fixture(scope="module")
def distribution(tmp_path_factory: pytest.TempPathFactory) -> Distribution:
    # Without --sdist/--wheel, build makes the sdist and then the wheel from the unpacked sdist:
    # a file the sdist misses is missing from the wheel too.
    outdir = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(outdir), str(ROOT)], cwd=outdir)
    (wheel,) = outdir.glob("*.whl")
    (sdist,) = outdir.glob("*.tar.gz")
    return Distribution(wheel=wheel, sdist=sdist)


@pytest.fixture(scope="module")
def venv(distribution: Distribution, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no system site-packages) with the wheel and its outbox extra installed."""
    home = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", str(home)], cwd=home)
    pip = [str(home / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    _run([*pip, "install", f"{distribution.wheel}[outbox]"], cwd=home)
    return home


def _run(command: list[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run outside the source tree and without the project's settings in the environment."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("INVALIDATOR_", "OUTBOX_", "PYTHON", "VIRTUAL_ENV"))
    }
    result = subprocess.run(
        command,
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stderr}"
    return result


def test_the_wheel_holds_the_three_packages_typed_and_nothing_else(
    distribution: Distribution,
) -> None:
    names = zipfile.ZipFile(distribution.wheel).namelist()
    top_level = {
        name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")
    }
    assert top_level == PACKAGES
    assert {f"{package}/py.typed" for package in PACKAGES} <= set(names)
    assert {"producers/outbox/cli.py", "invalidator/operators/_commands.py"} <= set(names)
    (license_file,) = [name for name in names if name.endswith(".dist-info/licenses/LICENSE")]
    assert "Apache License" in zipfile.ZipFile(distribution.wheel).read(license_file).decode()


def test_the_sdist_holds_the_sources_and_the_type_markers(distribution: Distribution) -> None:
    with tarfile.open(distribution.sdist) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"pyproject.toml", "README.md", "LICENSE"} <= names
    assert {f"{package}/py.typed" for package in PACKAGES} <= names
    assert "invalidator/cli.py" in names


@pytest.mark.long
def test_the_installed_commands_run_from_the_fresh_venv(venv: Path) -> None:
    bin_dir = venv / "bin"
    located = _run(
        [str(bin_dir / "python"), "-c", "import invalidator; print(invalidator.__file__)"],
        cwd=venv,
    )
    assert Path(located.stdout.strip()).is_relative_to(venv)

    assert (
        "Event-driven cache invalidation over Kafka."
        in _run([str(bin_dir / "invalidator"), "--help"], cwd=venv).stdout
    )
    check = _run(
        [str(bin_dir / "invalidator"), "catalogue", "check", "--catalogue", EXAMPLE_CATALOGUE],
        cwd=venv,
    ).stdout
    assert f"{EXAMPLE_CATALOGUE}: ok (4 namespaces, 5 event types" in check
    assert (
        "The transactional outbox's relay and table."
        in _run([str(bin_dir / "outbox"), "--help"], cwd=venv).stdout
    )
