"""A pytest plugin for service teams: `pytest_plugins = ["contracts.pytest_plugin"]`.

It adds the ini option `cache_catalogue = package.module:attribute` and the fixture
`cache_catalogue`, which loads that catalogue (running every check) or fails the test with
the catalogue's problems.
"""

from __future__ import annotations

import pytest

from contracts.catalogue import Catalogue, import_catalogue
from contracts.errors import CatalogueError, SettingsError


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ini option."""
    parser.addini(
        "cache_catalogue",
        "package.module:attribute of the namespace catalogue to load and check",
        default="",
    )


def load_checked_catalogue(path: str) -> Catalogue:
    """Import `package.module:attribute` and return the catalogue, or fail with its problems."""
    try:
        return import_catalogue(path, setting="cache_catalogue")
    except CatalogueError as error:
        pytest.fail(f"catalogue {path}: {error}", pytrace=False)
    except SettingsError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def cache_catalogue(pytestconfig: pytest.Config) -> Catalogue:
    """The catalogue named by the `cache_catalogue` ini option, checked."""
    path = str(pytestconfig.getini("cache_catalogue"))
    if not path:
        pytest.fail(
            "set `cache_catalogue = package.module:attribute` in your pytest ini", pytrace=False
        )
    return load_checked_catalogue(path)
