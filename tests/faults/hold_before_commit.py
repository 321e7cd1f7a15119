"""A real invalidator that, after its first purged batch, says so and hangs before committing.

The fault tests SIGKILL it there: the purges happened, the offsets were not committed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from aiokafka import TopicPartition

from invalidator import Invalidator
from invalidator.cli import load_settings


async def _main(region: str, marker: Path) -> None:
    async def hold(offsets: dict[TopicPartition, int]) -> None:
        marker.write_text(
            json.dumps({f"{tp.topic}:{tp.partition}": o for tp, o in offsets.items()})
        )
        await asyncio.Event().wait()

    invalidator = Invalidator(load_settings(), region=region, before_commit=hold)
    running = asyncio.create_task(invalidator.run())
    await invalidator.assigned.wait()
    marker.with_suffix(".assigned").touch()
    await running


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], Path(sys.argv[2])))
