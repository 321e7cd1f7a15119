"""Invalidators running in the test's own process, one per region, for integration and fault
tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from contracts import Catalogue
from invalidator import Invalidator, InvalidatorSettings
from invalidator.operators import start_at_log_end

REGIONS = ("eu", "us")
"""The regions of the test stack (eu: standalone Redis; us: Redis Cluster)."""


@contextlib.asynccontextmanager
async def running_invalidators(
    settings: InvalidatorSettings,
    catalogue: Catalogue,
    *,
    from_log_end: bool = True,
    regions: Sequence[str] = REGIONS,
) -> AsyncIterator[dict[str, Invalidator]]:
    """An invalidator per region of `regions`, running in this process.

    from_log_end: start each group at the log end of every topic it reads, mirrored ones
        included (False: where the group's offsets say).
    """
    running: dict[str, Invalidator] = {}
    tasks = []
    for region in regions:
        if from_log_end:
            await start_at_log_end(
                settings.kafka, settings.group_id(region), settings.event_topics(catalogue)
            )
        invalidator = Invalidator(settings, region=region, catalogue=catalogue)
        running[region] = invalidator
        tasks.append(asyncio.create_task(invalidator.run()))
    try:
        for invalidator in running.values():
            await asyncio.wait_for(invalidator.assigned.wait(), timeout=60)
        yield running
    finally:
        for invalidator in running.values():
            invalidator.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)


def failing_fast(settings: InvalidatorSettings, region: str) -> InvalidatorSettings:
    """`settings` with `region`'s first target timing out after 0.5 s and purge retries backing
    off from 50 ms to 0.5 s, so a frozen or cut server pauses the partitions within a second."""
    first, *others = settings.targets(region)
    quick = first.model_copy(update={"socket_timeout_s": 0.5})
    return settings.model_copy(
        update={
            "regions": {**settings.regions, region: [quick, *others]},
            "retry_initial_s": 0.05,
            "retry_max_s": 0.5,
        }
    )
