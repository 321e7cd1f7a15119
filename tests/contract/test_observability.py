"""The Grafana dashboard and the Prometheus alert rules in deploy/observability parse, have the
panels and alerts operators rely on, and query only metrics the invalidator registers, so a
renamed or misspelt metric fails here instead of leaving a panel empty or an alert silent."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "observability" / "invalidator-dashboard.json"
ALERTS = ROOT / "deploy" / "observability" / "invalidator-alerts.yml"
METRICS_MODULES = (
    ROOT / "invalidator" / "metrics.py",
    ROOT / "invalidator" / "operators" / "_group_lag_export.py",
    ROOT / "invalidator" / "watchdog" / "metrics.py",
)
"""Where series are registered: the invalidator's own, `invalidator offsets export`'s and the
watchdog's."""

METRIC_NAME = re.compile(r"\binvalidator_[a-z_]+\b")
SUFFIXES = {
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "GaugeMetricFamily": ("",),
    "CounterMetricFamily": ("_total", "_created"),
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
}
PANEL_TITLES = {
    "Events consumed per second, per region",
    "Namespaces purged per second, per target and strategy",
    "Lag in seconds, per partition",
    "Lag in records, per partition",
    "Paused, per region",
    "Dead letters per second, per reason",
    "Purge retries (outages) vs errors (defects) per second",
    "Offset commit failures per second",
    "Purge duration p50 / p99",
    "Event age at purge p50 / p99",
    "Remote event age at purge p50 / p99, per source region",
    "Group lag in seconds, per partition, from the broker",
    "Group lag in records, per partition, from the broker",
    "Watchdog: sampled events purged within 10 ms / 100 ms / 1 s / 10 s, per region",
    "Watchdog: purges not seen per second, per region and target",
    "Watchdog: purge lag p50 / p99, per region",
}
ALERT_NAMES = {
    "InvalidatorLagHigh",
    "InvalidatorPaused",
    "InvalidatorDeadLetters",
    "InvalidatorPurgeErrors",
    "InvalidatorDeadLetterErrors",
    "InvalidatorCommitFailures",
    "InvalidatorDown",
    "InvalidatorRemotePurgeSlow",
    "InvalidatorGroupLagHigh",
    "InvalidatorGroupLagUnread",
    "InvalidatorWatchdogPurgeNotSeen",
    "InvalidatorWatchdogDown",
}


def _registered_series() -> set[str]:
    """The series names the metrics modules expose: each `invalidator_*` literal is a histogram
    or gauge where it is passed to one, else a counter (the counters' names are passed to
    `CounterMetricFamily` through a loop variable)."""
    kinds: dict[str, str] = {}
    nodes = [node for m in METRICS_MODULES for node in ast.walk(ast.parse(m.read_text()))]
    for node in nodes:
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and METRIC_NAME.fullmatch(node.value)
        ):
            kinds.setdefault(node.value, "CounterMetricFamily")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in SUFFIXES
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            kinds[str(node.args[0].value)] = node.func.id
    return {name + suffix for name, kind in kinds.items() for suffix in SUFFIXES[kind]}


def _unknown_metrics(expressions: list[str]) -> set[str]:
    used = {name for expr in expressions for name in METRIC_NAME.findall(expr)}
    return used - _registered_series()


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _dashboard_expressions() -> list[str]:
    dashboard = _dashboard()
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return exprs


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_the_registered_series_are_the_documented_ones() -> None:
    series = _registered_series()
    assert "invalidator_events_consumed_total" in series
    assert "invalidator_paused" in series
    assert "invalidator_lag_seconds" in series
    assert "invalidator_purge_duration_seconds_bucket" in series
    assert "invalidator_group_lag_records" in series
    assert "invalidator_watchdog_purges_total" in series
    assert "invalidator_paused_total" not in series
    documented = (ROOT / "docs" / "operations.md").read_text()
    for name in series:
        if not name.endswith(("_bucket", "_sum", "_count", "_created")):
            assert f"`{name}" in documented, f"{name} is not in docs/operations.md's metrics list"


def test_the_dashboard_has_every_panel_and_each_panel_a_query() -> None:
    panels = _dashboard()["panels"]
    assert {panel["title"] for panel in panels} == PANEL_TITLES
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]
    quantiles = [e for e in _dashboard_expressions() if e.startswith("histogram_quantile(")]
    assert len(quantiles) == 8


def test_the_rules_have_every_alert_with_a_runbook_step() -> None:
    rules = _rules()
    assert {rule["alert"] for rule in rules} == ALERT_NAMES
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), rule["alert"]
        step = re.search(r'docs/(\w+\.md) "([^"]+)"|`invalidator ', annotations["description"])
        assert step, rule["alert"]
        if step.group(1):
            page = (ROOT / "docs" / step.group(1)).read_text()
            assert f"## {step.group(2)}" in page, f"{rule['alert']}: no section {step.group(0)}"
    by_name = {rule["alert"]: rule for rule in rules}
    assert by_name["InvalidatorPurgeErrors"]["labels"]["severity"] == "critical"
    assert by_name["InvalidatorDeadLetters"]["labels"]["severity"] == "warning"
    assert "dead-letters show" in by_name["InvalidatorDeadLetters"]["annotations"]["description"]


def test_every_metric_in_the_dashboard_and_the_rules_is_registered() -> None:
    expressions = _dashboard_expressions() + [rule["expr"] for rule in _rules()]
    assert len(expressions) > 10
    assert _unknown_metrics(expressions) == set()


def test_a_misspelt_metric_is_caught() -> None:
    assert _unknown_metrics(["rate(invalidator_event_consumed_total[5m])"]) == {
        "invalidator_event_consumed_total"
    }
    assert _unknown_metrics(["invalidator_paused_total > 0"]) == {"invalidator_paused_total"}
