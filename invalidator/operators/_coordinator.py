"""Retrying a consumer-group call until the group's coordinator answers, with a deadline.

A broker creates `__consumer_offsets` on the first group request it receives and answers
`COORDINATOR_NOT_AVAILABLE` (or `NOT_COORDINATOR`, `COORDINATOR_LOAD_IN_PROGRESS`) until the
partition holding the group is led and loaded; on a freshly started broker that takes seconds.
Every group call that is not made by a subscribed consumer (which retries on its own) goes
through `until_coordinator_answers`: the operator commands, the demo, the test fixtures and the
stale-data harness (all through `invalidator.operators._offsets`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    GroupLoadInProgressError,
    NotCoordinatorForGroupError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

COORDINATOR_ERRORS: tuple[type[Exception], ...] = (
    GroupCoordinatorNotAvailableError,
    NotCoordinatorForGroupError,
    GroupLoadInProgressError,
)
"""The answers that mean "ask again shortly": the coordinator is moving, starting or loading."""

COORDINATOR_DEADLINE_S = 60.0
"""How long a group call keeps retrying before giving up (a fresh broker needs a few seconds)."""


class CoordinatorUnavailableError(GroupCoordinatorNotAvailableError):  # type: ignore[misc]
    """No coordinator answered for a group within the deadline (a KafkaError: exit status 3)."""


async def until_coordinator_answers(
    operation: Callable[[], Awaitable[T]],
    *,
    group_id: str,
    deadline_s: float | None = None,
    first_delay_s: float = 0.1,
    max_delay_s: float = 1.0,
) -> T:
    """Await `operation()` again while the group's coordinator is not available, then return.

    operation: makes one fresh attempt each call (a new request, not a reused awaitable).
    group_id: the group whose coordinator is asked, for the log and the final error.
    deadline_s: give up after this long with CoordinatorUnavailableError naming the group
        (default COORDINATOR_DEADLINE_S).
    first_delay_s, max_delay_s: the backoff between attempts doubles from the first to the max.
    """
    if deadline_s is None:
        deadline_s = COORDINATOR_DEADLINE_S
    give_up_at = time.monotonic() + deadline_s
    delay = first_delay_s
    attempts = 0
    while True:
        attempts += 1
        try:
            # aiokafka's own group calls (a consumer's commit) retry without a deadline.
            async with asyncio.timeout(max(give_up_at - time.monotonic(), 0.001)):
                return await operation()
        except (*COORDINATOR_ERRORS, TimeoutError) as error:  # type: ignore[misc]
            remaining = give_up_at - time.monotonic()
            if remaining <= 0:
                last = "no answer" if isinstance(error, TimeoutError) else str(error)
                raise CoordinatorUnavailableError(
                    f"no group coordinator answered for group {group_id} within "
                    f"{deadline_s:.0f}s ({attempts} attempts; last: {last}); is the broker "
                    "healthy and can it create its __consumer_offsets topic?"
                ) from error
            if attempts == 1:
                log.info("group %s: coordinator not ready yet (%s); retrying", group_id, error)
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, max_delay_s)
