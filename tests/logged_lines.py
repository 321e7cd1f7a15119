"""The lines a logger emits through the filters of every command's log handler."""

from __future__ import annotations

import collections
import logging

from contracts.logs import repeat_limiters


class LoggedLines(logging.Handler):
    """While attached (`with`), counts the lines `logger` emits past the repeat limiters
    (`contracts.logs.repeat_limiters`), by message template."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(level=logging.DEBUG)
        self._logger = logger
        self._templates: collections.Counter[str] = collections.Counter()
        for limiter in repeat_limiters():
            self.addFilter(limiter)

    def emit(self, record: logging.LogRecord) -> None:
        """Count the line's template (its arguments left out)."""
        self._templates[str(record.msg)] += 1

    def counts(self) -> dict[str, int]:
        """Template -> how many lines were emitted with it."""
        return dict(self._templates)

    def __enter__(self) -> LoggedLines:
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._logger.removeHandler(self)
