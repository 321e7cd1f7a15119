"""The JSON log format: one object per line with time, level, logger, message, the exception's
text, the process's context and a call's extra fields; a record's args only through its message."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime

from pydantic import SecretStr

from contracts.logs import JsonFormatter, ProcessContext


def _record(
    message: str, *args: object, exc_info: logging._SysExcInfoType | None = None
) -> logging.LogRecord:
    return logging.LogRecord(
        "invalidator.consumer", logging.WARNING, __file__, 1, message, args, exc_info
    )


def test_a_line_holds_time_level_logger_and_the_formatted_message() -> None:
    line = json.loads(JsonFormatter().format(_record("assigned %s", "orders[0]")))
    assert line["level"] == "WARNING"
    assert line["logger"] == "invalidator.consumer"
    assert line["message"] == "assigned orders[0]"
    assert datetime.fromisoformat(line["time"]).tzinfo is not None
    assert "exception" not in line
    assert "args" not in line and "msg" not in line


def test_an_exception_is_written_with_its_traceback() -> None:
    try:
        raise ValueError("the purge failed")
    except ValueError:
        record = _record("batch failed", exc_info=sys.exc_info())
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "batch failed"
    assert line["exception"].startswith("Traceback")
    assert "ValueError: the purge failed" in line["exception"]


def test_extra_fields_and_the_process_context_are_carried() -> None:
    context = ProcessContext()
    context.fields.update({"region": "eu", "group": "invalidator.eu"})
    record = _record("revoked")
    record.__dict__.update({"partitions": ["orders[0]", "orders[1]"], "offsets": {"orders[1]": 7}})
    assert context.filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["region"] == "eu"
    assert line["group"] == "invalidator.eu"
    assert line["partitions"] == ["orders[0]", "orders[1]"]
    assert line["offsets"] == {"orders[1]": 7}


def test_a_field_of_the_call_wins_over_the_process_context() -> None:
    context = ProcessContext()
    context.fields["region"] = "eu"
    record = _record("replay")
    record.region = "us"
    context.filter(record)
    assert json.loads(JsonFormatter().format(record))["region"] == "us"


def test_a_value_json_lacks_is_written_as_its_str_and_a_secret_stays_masked() -> None:
    record = _record("connecting")
    record.password = SecretStr("hunter2-secret")
    text = JsonFormatter().format(record)
    assert "hunter2-secret" not in text
    assert json.loads(text)["password"] == "**********"
