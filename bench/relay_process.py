"""`python -m bench.relay_process SCHEMA STATS_FILE`: the outbox relay as a process of its own on
a schema of the stack's PostgreSQL, as `outbox relay` is deployed (beside the service, not in its
process): the outbox_e2e figure's PostgreSQL relay.

Kafka comes from the INVALIDATOR_KAFKA__* variables (the bench's endpoints), the database from
`bench.outbox.database_url`. Its stats (`RelayStats.as_dict()`) are rewritten to STATS_FILE every
STATS_INTERVAL_S and when it stops (SIGTERM or SIGINT).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine

from bench.outbox import database_url
from bench.processes import BenchProcess
from invalidator.settings import InvalidatorSettings
from producers.outbox import OutboxRelay

STATS_INTERVAL_S = 0.2
CLIENT_ID = "bench-outbox-e2e-relay"


async def relay_until_stopped(schema: str, stats_file: Path) -> None:
    """Relay the outbox of `schema` until SIGTERM/SIGINT, its stats in `stats_file`."""
    engine = create_async_engine(
        database_url("postgresql"), execution_options={"schema_translate_map": {None: schema}}
    )
    relay = OutboxRelay(engine, InvalidatorSettings().kafka, client_id=CLIENT_ID)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, relay.stop)

    async def report() -> None:
        while True:
            relay.stats.write_json(stats_file)
            await asyncio.sleep(STATS_INTERVAL_S)

    reporting = asyncio.create_task(report())
    try:
        await relay.start()
        await relay.run()
    finally:
        reporting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporting
        await relay.stop_producer()
        await engine.dispose()
        relay.stats.write_json(stats_file)


class RelayProcess:
    """This module run as a BenchProcess, and what its stats file says."""

    def __init__(self, schema: str, *, log_dir: Path) -> None:
        """schema: the PostgreSQL schema whose outbox it relays.
        log_dir: where its log and stats file go.
        """
        self.stats_file = log_dir / "outbox-relay-stats.json"
        self.stats_file.unlink(missing_ok=True)
        self.process = BenchProcess(
            "outbox-relay",
            [sys.executable, "-m", "bench.relay_process", schema, str(self.stats_file)],
            env={},
            log_path=log_dir / "outbox-relay.log",
        )

    def stats(self) -> dict[str, Any]:
        """Its last stats (empty before the first write)."""
        try:
            stats: dict[str, Any] = json.loads(self.stats_file.read_text())
        except FileNotFoundError:
            return {}
        return stats

    def published(self) -> int:
        """Rows it published, as of its last stats (at most STATS_INTERVAL_S old)."""
        return int(self.stats().get("published", 0))


if __name__ == "__main__":
    asyncio.run(relay_until_stopped(sys.argv[1], Path(sys.argv[2])))
