"""A write service that commits orders through the outbox, then says so and hangs.

`python tests/faults/outbox_service.py <database url> <run> <writes> <marker>`: commits `writes`
transactions (an order row and its outbox row each), writes `marker` after the last commit and
waits forever. The fault test SIGKILLs it there: right after a commit, before any publish.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine

from tests.faults.outbox_orders import write_order


async def _main(database_url: str, run: str, writes: int, marker: Path) -> None:
    engine = create_async_engine(database_url)
    for n in range(writes):
        async with engine.begin() as connection:
            await write_order(connection, run, n)
    marker.write_text(str(writes))
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])))
