"""A real outbox relay that, after its first published batch, says so and hangs before marking
its rows published.

`python tests/faults/hold_before_mark.py <marker>`, with the relay's settings in the environment
(`OUTBOX_*`, as `outbox relay` reads them). The fault tests SIGKILL it there: the batch is on the
topic, its rows are not marked.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from producers.outbox.__main__ import relay_from_env


async def _main(marker: Path) -> None:
    relay = relay_from_env()

    async def hold(*_: Any, **__: Any) -> None:
        marker.touch()
        await asyncio.Event().wait()

    relay._mark_published = hold  # type: ignore[method-assign]
    await relay.run()


if __name__ == "__main__":
    asyncio.run(_main(Path(sys.argv[1])))
