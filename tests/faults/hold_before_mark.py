"""A real outbox relay that, once Kafka acknowledged its first batch, says so and hangs before
marking the rows published.

`python tests/faults/hold_before_mark.py <marker>`, with the relay's settings in the environment
(`OUTBOX_*`, as `outbox relay` reads them). The fault tests SIGKILL it there: the batch is on the
topic, its rows are not marked.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from producers.outbox import OutboxRelay, RelaySettings
from producers.outbox.cli import engine_of
from producers.outbox.relay import PendingRow


class HeldRelay(OutboxRelay):
    """Touches `marker` after its first acknowledged batch, then never returns to mark it."""

    marker: Path

    async def _publish(self, rows: Sequence[PendingRow]) -> list[PendingRow]:
        acknowledged = await super()._publish(rows)
        self.marker.touch()
        await asyncio.Event().wait()
        return acknowledged


async def _main(marker: Path) -> None:
    settings = RelaySettings()
    relay = HeldRelay(
        engine_of(settings),
        settings.kafka,
        batch_size=settings.batch_size,
        poll_interval_s=settings.poll_interval_s,
    )
    relay.marker = marker
    await relay.start()
    await relay.run()


if __name__ == "__main__":
    asyncio.run(_main(Path(sys.argv[1])))
