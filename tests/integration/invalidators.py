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
