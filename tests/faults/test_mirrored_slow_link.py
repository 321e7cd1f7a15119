"""A slow link between the regions (300 ms one way, +-50 ms jitter) while both regions write:
nothing is lost, and no storm: neither invalidator rejoins its group, retries a purge or fails
a commit (each reads its own cluster; only MirrorMaker crosses the link). The remote purges'
latency (the original record timestamp to the purge's generation token) is reported. The link
gets its default delay back afterwards.

Time to recover: from the writers' stop to the last event purged in both regions (the link
stays slow meanwhile: what is in flight has to cross it).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from contracts.percentiles import percentile
from invalidator import InvalidatorSettings
from producers import RedisClient
from tests.faults.accounting import record_outcome, scaled
from tests.faults.mirrored import mirrored_run
from tests.integration.mirrored import MIRRORED_REGIONS, MirroredStack

DELAY_MS = 300.0
JITTER_MS = 50.0
SLOW_S = scaled(10, 60)
"""How long both regions write over the slow link."""
RECOVER_WITHIN_S = 120.0


async def test_slow_jittery_link_loses_nothing_and_starts_no_storm(
    settings: InvalidatorSettings,
    redis_clients: dict[str, RedisClient],
    mirrored_stack: MirroredStack,
    tmp_path: Path,
) -> None:
    link = mirrored_stack.link
    try:
        async with mirrored_run(mirrored_stack, settings, redis_clients, tmp_path) as run:
            await link.set_delay(DELAY_MS, jitter_ms=JITTER_MS)
            status = await link.status()
            assert (status.delay_ms, status.jitter_ms, status.cut) == (DELAY_MS, JITTER_MS, False)
            await asyncio.sleep(SLOW_S)  # the fault's duration, not synchronisation
            await run.stop_writing()
            stopped_at = time.monotonic()
            recovered_at = await run.wait_everything_purged(within=RECOVER_WITHIN_S)
            run.check_processes()
            latencies = {
                region: list((await run.remote_purge_latencies_ms(region)).values())
                for region in MIRRORED_REGIONS
            }
            # The last stats file each process wrote (every second).
            stats = {
                region: json.loads(run.stats_files[region].read_text())
                for region in MIRRORED_REGIONS
            }
            # A first join revokes nothing ("revoked 0 partitions"); a rejoin revokes some.
            rejoins = {
                region: (
                    run.log_count(region, ": assigned "),
                    run.log_count(region, ": revoked ")
                    - run.log_count(region, ": revoked 0 partitions"),
                )
                for region in MIRRORED_REGIONS
            }
        accounting = await run.account()
    finally:
        await mirrored_stack.restore_link()

    p50 = {region: percentile(values, 0.5) for region, values in latencies.items()}
    p99 = {region: percentile(values, 0.99) for region, values in latencies.items()}
    record_outcome(
        accounting.outcome(
            f"mirrored: link {DELAY_MS:.0f} ms +-{JITTER_MS:.0f} ms one way for {SLOW_S} s",
            recovered_at - stopped_at,
            note="remote purge p50/p99: "
            + ", ".join(f"{r} {p50[r]:.0f}/{p99[r]:.0f} ms" for r in MIRRORED_REGIONS),
        )
    )
    accounting.assert_nothing_lost()
    assert accounting.dead_lettered == 0, "valid events were dead-lettered"
    for region in MIRRORED_REGIONS:
        assert rejoins[region] == (1, 0), f"{region} (assigned, revoked): {rejoins[region]}"
        counters = {k: stats[region][k] for k in ("purge_retries", "purge_errors")}
        assert counters == {"purge_retries": 0, "purge_errors": 0}, (region, counters)
        assert stats[region]["commit_failures"] == 0, (region, stats[region])
        # The remote purges took the link's delay, and no more than a few round trips of it.
        assert DELAY_MS - JITTER_MS <= p50[region] < 10 * DELAY_MS, (region, p50[region])
