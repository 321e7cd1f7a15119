"""A real invalidator that, after its first purged batch, says so and hangs before committing.

The fault tests SIGKILL it there: the purges happened, the offsets were not committed. It runs
on the production parts with its targets wrapped: the first purge that fails on no target writes
the marker and never returns, so the loop never hands that batch's offsets over.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import replace
from pathlib import Path

from invalidator import Invalidator
from invalidator.cli import load_settings
from invalidator.planner import NamespaceKeys
from invalidator.wiring import Targets, production_parts


class _HoldAfterFirstPurge:
    """The region's targets, but a purge that failed nowhere writes `marker` and hangs."""

    def __init__(self, targets: Targets, marker: Path) -> None:
        self._targets = targets
        self._marker = marker

    def names(self) -> set[str]:
        return self._targets.names()

    async def purge(
        self, by_namespace: NamespaceKeys, *, only: set[str] | None = None
    ) -> dict[str, Exception]:
        failed = await self._targets.purge(by_namespace, only=only)
        if not failed:
            keys = sorted(key for _, keys in by_namespace for key in keys)
            self._marker.write_text(json.dumps({"purged": keys}))
            await asyncio.Event().wait()
        return failed

    async def close(self) -> None:
        await self._targets.close()


async def _main(region: str, marker: Path) -> None:
    settings = load_settings()
    invalidator = Invalidator(settings, region=region)
    parts = production_parts(settings, region=region)
    held = replace(parts, targets=_HoldAfterFirstPurge(parts.targets, marker))
    running = asyncio.create_task(invalidator.run_on(held))
    await invalidator.assigned.wait()
    marker.with_suffix(".assigned").touch()
    await running


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], Path(sys.argv[2])))
