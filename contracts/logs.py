"""Log output of the `invalidator` and `outbox` commands: text (the default) or JSON lines.

A JSON line holds time, level, logger, message, the exception text when there is one, the
process's context (e.g. region and group, set once at start) and the fields a log call passes as
`extra={...}` (partitions, offsets). A record's `args` are never dumped: they only reach the
output through the formatted message, as in the text format.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

# The attributes every LogRecord has: anything else on a record came from `extra` or a filter.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, exception (its
    traceback, when the record has one), and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (values that JSON lacks are written as their str)."""
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and name not in line:
                line[name] = value
        return json.dumps(line, default=str)


class ProcessContext(logging.Filter):
    """Adds the same fields (e.g. region and group) to every record that passes the handler."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Stamp the fields on `record` (those a log call passed itself win); never drops it."""
        for name, value in self.fields.items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class RepeatLimiter(logging.Filter):
    """Lets one line of a library's repeated message through per `every_s` seconds.

    aiokafka logs "Unable connect to node" and "Unable to update metadata" in a loop with no
    backoff while a broker is down: tens of thousands of lines in 30 s. A message of a logger
    under `prefixes` (by logger, level and text before its arguments) passes once per window;
    the next one that passes says how many were held back. Other loggers always pass.
    """

    def __init__(
        self,
        prefixes: tuple[str, ...] = ("aiokafka",),
        every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._prefixes = prefixes
        self._every_s = every_s
        self._clock = clock
        self._windows: dict[tuple[str, int, str], tuple[float, int]] = {}
        """(logger, level, message template) -> (when one last passed, how many held since)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a repeat within the window; the first line after it carries the count."""
        if not record.name.startswith(self._prefixes):
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        passed_at, held = self._windows.get(key, (None, 0))
        if passed_at is not None and now - passed_at < self._every_s:
            self._windows[key] = (passed_at, held + 1)
            return False
        if passed_at is not None and held:
            record.msg = f"{record.msg} [{held} more like this in the last {now - passed_at:.0f} s]"
        self._windows[key] = (now, 0)
        return True


def repeat_limiters(clock: Callable[[], float] = time.monotonic) -> list[RepeatLimiter]:
    """The limits on repeated lines that every command's log has: aiokafka's connection and
    metadata lines once per 10 s while a broker is down; the outbox relay's own warnings (a
    batch that failed, a row Kafka did not acknowledge: retried every poll) once per minute."""
    return [
        RepeatLimiter(("aiokafka",), every_s=10.0, clock=clock),
        RepeatLimiter(("producers.outbox.relay",), every_s=60.0, clock=clock),
    ]


_CONTEXT = ProcessContext()


def add_log_options(parser: argparse.ArgumentParser) -> None:
    """Add a command's --log-level and --log-format (the arguments of `configure_logging`)."""
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, default="text", help="text (default) or json lines"
    )


def configure_logging(level: str, log_format: LogFormat, text_format: str) -> None:
    """Log to stderr at `level` (a name: DEBUG, INFO...), as JSON lines or as `text_format`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_CONTEXT)
    for limiter in repeat_limiters():
        handler.addFilter(limiter)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(text_format))
    logging.basicConfig(level=level.upper(), handlers=[handler])


def set_log_context(fields: Mapping[str, str]) -> None:
    """Fields every later log line of this process carries (in the JSON format)."""
    _CONTEXT.fields.update(fields)
