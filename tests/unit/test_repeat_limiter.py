"""A library's repeated log line passes once per window, then with the count held back; other
loggers' lines always pass."""

from __future__ import annotations

import logging

from contracts.logs import RepeatLimiter, repeat_limiters


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(logger: str, message: str, *args: object) -> logging.LogRecord:
    """An ERROR record of `logger`."""
    return logging.LogRecord(logger, logging.ERROR, __file__, 1, message, args, None)


def test_a_repeated_aiokafka_line_passes_once_per_window_then_with_the_count() -> None:
    clock = Clock()
    limiter = RepeatLimiter(every_s=10.0, clock=clock)
    template = "Unable connect to node with id %s: %s"
    passed = []
    for n in range(1000):
        clock.now = n * 0.008  # aiokafka's loop: a line every 8 ms for 8 s
        line = record("aiokafka.conn", template, 1, "refused")
        if limiter.filter(line):
            passed.append(line.getMessage())
    clock.now = 10.5
    after = record("aiokafka.conn", template, 1, "refused")
    assert limiter.filter(after)
    assert passed == ["Unable connect to node with id 1: refused"]
    assert after.getMessage() == (
        "Unable connect to node with id 1: refused [999 more like this in the last 10 s]"
    )


def test_different_messages_and_other_loggers_are_not_held_back() -> None:
    limiter = RepeatLimiter(every_s=10.0, clock=Clock())
    assert limiter.filter(record("aiokafka.conn", "Unable connect to node with id %s", 1))
    assert limiter.filter(record("aiokafka", "Unable to update metadata from %s", [1]))
    for _ in range(3):
        assert limiter.filter(record("invalidator.loop", "purge failed: %s", "timeout"))


def test_a_relay_retrying_a_refused_row_every_poll_says_so_once_a_minute() -> None:
    clock = Clock()
    limiters = repeat_limiters(clock)
    template = "outbox relay: row %d not acknowledged: %s"
    passed = []
    for n in range(600):  # a poll every 0.2 s for 2 minutes
        clock.now = n * 0.2
        line = record("producers.outbox.relay", template, 7, "MessageSizeTooLargeError")
        if all(limiter.filter(line) for limiter in limiters):
            passed.append(line.getMessage())
    assert passed == [
        "outbox relay: row 7 not acknowledged: MessageSizeTooLargeError",
        "outbox relay: row 7 not acknowledged: MessageSizeTooLargeError"
        " [299 more like this in the last 60 s]",
    ]
    aiokafka = record("aiokafka.conn", "Unable connect to node with id %s", 1)
    assert all(limiter.filter(aiokafka) for limiter in limiters)
    clock.now += 10.0
    again = record("aiokafka.conn", "Unable connect to node with id %s", 1)
    assert all(limiter.filter(again) for limiter in limiters), "aiokafka's window stays 10 s"
