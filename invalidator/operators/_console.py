"""What the `invalidator` commands share: exit codes, the --catalogue and --json options, tables,
JSON or text output, a progress bar."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

EXIT_OK = 0
EXIT_REFUSED = 1
"""Refused (active group members, no confirmation, a failed catalogue check), or a purge
failed on some target."""
EXIT_INPUT = 2
"""Bad input or configuration."""
EXIT_UNAVAILABLE = 3
"""Kafka or Redis cannot be reached."""
EXIT_NOT_SEEN = 4
"""`watch --since`: a purge the watchdog looked for was not seen (missing) in some region."""


def add_catalogue_option(parser: argparse.ArgumentParser) -> None:
    """Add --catalogue, which overrides INVALIDATOR_CATALOGUE."""
    parser.add_argument(
        "--catalogue", help="package.module:attribute (overrides INVALIDATOR_CATALOGUE)"
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """Add --json: print the report as JSON (`emit`)."""
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def iso_time(ms: int | None) -> str | None:
    """A record timestamp (ms) as ISO 8601 UTC."""
    return (
        None
        if ms is None
        else datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Aligned columns; None shows as -."""
    cells = [
        [str(h) for h in headers],
        *[["-" if c is None else str(c) for c in row] for row in rows],
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    """Print `data` as JSON with --json, else `text`."""
    print(json.dumps(data, indent=2, default=str) if args.json else text)


class ProgressBar:
    """A one-line progress bar on standard error (only on a terminal)."""

    def __init__(self, enabled: bool) -> None:
        """enabled: False for --json; it is also off when standard error is no terminal."""
        self.enabled = enabled and sys.stderr.isatty()

    def __call__(self, phase: str, done: int, total: int) -> None:
        """Redraw: `phase` (read, purge), `done` of `total`."""
        if not self.enabled or total <= 0:
            return
        filled = int(30 * done / total)
        sys.stderr.write(f"\r{phase:5} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()
