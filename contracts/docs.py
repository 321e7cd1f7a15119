"""The catalogue published as documentation: a JSON document, a markdown page, a text table.

Generated from the declarations, never written by hand: a reader sees, per event, exactly which
keys it purges.
"""

from __future__ import annotations

from typing import Any

from contracts.catalogue import Catalogue
from contracts.events import CONTENT_TYPE_JSON, HEADERS_DOC, KEY_FORMAT
from contracts.ids import ID_PATTERN
from contracts.layout import hash_tag_template
from contracts.namespaces import Namespace


def _seconds(namespace: Namespace) -> dict[str, float]:
    return {
        "ttl_s": namespace.ttl.total_seconds(),
        "fill_hold_off_s": namespace.fill_hold_off.total_seconds(),
    }


def catalogue_json(catalogue: Catalogue) -> dict[str, Any]:
    """The catalogue as plain JSON data: namespaces, and per event type what it purges."""
    namespaces = [
        {
            "name": ns.name,
            "template": ns.template,
            "keys": hash_tag_template(ns),
            "owner": ns.owner,
            "description": ns.description,
            "value_schema_version": ns.value_schema_version,
            "strategy": ns.strategy.value,
            "single_flight": ns.single_flight,
            **_seconds(ns),
            "purged_by": [
                {"event": rule.event.event_type, "params": dict(rule.params)}
                for rule in ns.purged_by
            ],
        }
        for ns in catalogue.namespaces
    ]
    events = []
    for event_type in sorted({m.event_type for m in catalogue.schemas.models()}):
        newest = catalogue.schemas.latest(event_type)
        if newest is None:  # every listed type has a newest model; this satisfies the checker
            continue
        events.append(
            {
                "type": event_type,
                "versions": sorted(
                    m.schema_version
                    for m in catalogue.schemas.models()
                    if m.event_type == event_type
                ),
                "topic": newest.topic,
                "aggregate_type": newest.aggregate_type,
                "description": (newest.__doc__ or "").strip(),
                "purges": [
                    {"namespace": ns.name, "template": ns.template, "params": dict(rule.params)}
                    for ns, rule in catalogue.rules_for(event_type)
                ],
                "payload_schema": newest.model_json_schema(),
            }
        )
    wire = {
        "value": f"the envelope as JSON ({CONTENT_TYPE_JSON})",
        "key": KEY_FORMAT,
        "id_pattern": ID_PATTERN,
        "headers": dict(HEADERS_DOC),
    }
    return {"namespaces": namespaces, "events": events, "wire": wire}


def catalogue_table(catalogue: Catalogue) -> str:
    """One line per (event, namespace) pair: event -> namespace -> key shape, for a terminal."""
    rows = [("EVENT", "VERSIONS", "NAMESPACE", "KEY", "FROM")]
    for event in catalogue_json(catalogue)["events"]:
        versions = ",".join(f"v{v}" for v in event["versions"])
        for purge in event["purges"] or [{"namespace": "-", "template": "-", "params": {}}]:
            sources = ", ".join(f"{p}={path}" for p, path in purge["params"].items()) or "-"
            rows.append((event["type"], versions, purge["namespace"], purge["template"], sources))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def catalogue_markdown(catalogue: Catalogue, *, title: str) -> str:
    """A markdown page: per event what it purges, then every namespace's card."""
    data = catalogue_json(catalogue)
    lines = [
        f"# {title}",
        "",
        "Generated from the catalogue by `invalidator catalogue export --format markdown`;",
        "do not edit by hand.",
        "",
        "## What each event purges",
        "",
        "| event | versions | topic | purges | key | parameters from |",
        "|---|---|---|---|---|---|",
    ]
    for event in data["events"]:
        versions = ", ".join(f"v{v}" for v in event["versions"])
        for purge in event["purges"] or [{"namespace": "(nothing)", "template": "", "params": {}}]:
            sources = ", ".join(f"`{p}` ← `{path}`" for p, path in purge["params"].items())
            lines.append(
                f"| `{event['type']}` | {versions} | `{event['topic']}` | {purge['namespace']} "
                f"| `{purge['template']}` | {sources} |"
            )
    lines += [
        "",
        "## On the wire",
        "",
        f"- Record value: the envelope as JSON (`{CONTENT_TYPE_JSON}`), its `payload` typed per",
        "  event (JSON schemas: `asyncapi.json`). Every id (`SafeId`: the envelope's `tenant` and",
        f"  `aggregate_id`, payload ids) matches `{ID_PATTERN}`; anything else is dead-lettered.",
        f"- Record key: `{KEY_FORMAT}` in UTF-8, e.g. `order:o-7`, not the bare id: events of",
        "  one aggregate share a partition, and keep their order, only if every producer keys",
        "  them alike.",
        "- Headers (UTF-8 values): "
        + "; ".join(f"`{name}`: {what}" for name, what in HEADERS_DOC.items())
        + ".",
        "- Records that cannot be decoded or planned go to the dead-letter topic with their",
        "  value, key and headers unchanged, plus `dlq-reason`, `dlq-detail`, `dlq-topic`,",
        "  `dlq-partition`, `dlq-offset` and `dlq-group` (see `asyncapi.json`).",
        "",
        "## Namespaces",
        "",
    ]
    for ns in data["namespaces"]:
        purged_by = ", ".join(sorted({f"`{r['event']}`" for r in ns["purged_by"]}))
        lines += [
            f"### {ns['name']}",
            "",
            ns["description"],
            "",
            f"- key template: `{ns['template']}`; Redis keys: `{ns['keys']}`",
            f"- owner: {ns['owner']}; value schema version: {ns['value_schema_version']}",
            f"- purge strategy: {ns['strategy']}; TTL backstop: {ns['ttl_s']:.0f} s; "
            f"single-flight fills: {'yes' if ns['single_flight'] else 'no'}; "
            f"fill hold-off: {ns['fill_hold_off_s']:.0f} s",
            f"- purged by: {purged_by}",
            "",
        ]
    return "\n".join(lines)
