"""The README and the reference in docs/ stay true to the code: every module in the layout
(docs/design.md), every setting in the table (docs/configuration.md), the dead-letter headers as
the code documents them (docs/operations.md), every Kafka ACL call of deploy/kafka-acls.conf
(docs/deployment.md), and every path they name exists."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest

from contracts import RedisTarget
from invalidator.deadletter import HEADERS_DOC
from invalidator.settings import InvalidatorSettings

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
DOCS = REPO / "docs"
LAYOUT = (DOCS / "design.md").read_text()
CONFIGURATION = (DOCS / "configuration.md").read_text()
OPERATIONS = (DOCS / "operations.md").read_text()
DEPLOYMENT = (DOCS / "deployment.md").read_text()


@pytest.mark.parametrize("package", ["invalidator", "invalidator/operators"])
def test_the_layout_names_every_module(package: str) -> None:
    row = next(line for line in LAYOUT.splitlines() if line.startswith(f"| `{package}/`"))
    named = re.findall(r"`([\w*]+\.py)`", row)
    modules = [
        path.name
        for path in (REPO / package).glob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    ]
    assert modules, f"{package}/ holds no module"
    missing = [m for m in modules if not any(fnmatch.fnmatch(m, pattern) for pattern in named)]
    assert missing == [], f"the layout table of docs/design.md omits {package}/{missing}"


def test_the_settings_table_names_every_setting() -> None:
    missing = [
        f"INVALIDATOR_{name.upper()}"
        for name in InvalidatorSettings.model_fields
        if f"INVALIDATOR_{name.upper()}" not in CONFIGURATION
    ]
    assert missing == []


def test_the_settings_table_names_every_redis_target_option() -> None:
    row = next(line for line in CONFIGURATION.splitlines() if line.startswith("| a target's keys"))
    assert [name for name in RedisTarget.model_fields if f"`{name}`" not in row] == []


def test_the_readme_points_only_inside_the_repository() -> None:
    assert re.findall(r"`\.\./[^`]*`|\]\(\.\./", README) == []
    named = re.findall(r"`((?:docs|deploy|demo|tests)/[\w./-]+\.(?:md|py))`", README)
    linked = re.findall(r"\]\(((?:docs|deploy)/[\w./-]+\.md)\)", README)
    assert len(linked) >= 10, "the README links to every page of docs/"
    for path in named + linked:
        assert (REPO / path).exists(), path


@pytest.mark.parametrize("page", sorted(path.name for path in DOCS.glob("*.md")))
def test_each_page_of_docs_names_pages_that_exist(page: str) -> None:
    text = (DOCS / page).read_text()
    for name in re.findall(r"`([\w-]+\.md)`|\]\(([\w-]+\.md)[#)]", text):
        linked = next(part for part in name if part)
        assert (DOCS / linked).exists() or linked == "README.md", f"{page} names {linked}"
    for path in re.findall(r"`(docs/[\w./-]+\.md)`", text):
        assert (REPO / path).exists(), f"{page} names {path}"


def test_the_dead_letter_headers_table_is_the_one_the_code_documents() -> None:
    rows = "\n".join(f"| `{name}` | {holds} |" for name, holds in HEADERS_DOC.items())
    expected = f"| header | holds |\n|---|---|\n{rows}"
    shown = OPERATIONS.split("<!-- dead-letter-headers:begin -->\n")[1].split("\n<!--")[0]
    assert shown == expected, f"the dead-letter headers table should read:\n{expected}"


def test_the_readme_quotes_every_kafka_acl_call() -> None:
    lines = (REPO / "deploy" / "kafka-acls.conf").read_text().splitlines()
    calls = [line for line in lines if line.strip() and not line.startswith("#")]
    missing = [call for call in calls if f"admin.properties {call}\n" not in DEPLOYMENT]
    assert calls and missing == [], f"Least privilege lacks kafka-acls.sh ... {missing}"
