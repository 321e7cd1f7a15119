"""Which events the watchdog checks: 1 in N, chosen by event id."""

from __future__ import annotations

import zlib


def is_sampled(event_id: str, every: int) -> bool:
    """Whether the event `event_id` is one of the 1 in `every` the watchdog checks.

    The choice is a hash of the id, not a random draw: every watchdog (and every rerun over the
    same window) checks the same events, so their reports can be compared event by event.
    event_id: the envelope's event id. every: N of "1 in N" (1: every event).
    """
    return every <= 1 or zlib.crc32(event_id.encode()) % every == 0
