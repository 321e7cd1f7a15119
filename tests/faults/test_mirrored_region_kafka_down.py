"""us's Kafka cluster (kafka-us) stopped (SIGTERM) while both regions write, and started again
(`stack.sh up --mirrored`): eu's writes and purges go on in eu meanwhile; after the restart us
catches up (its own events, published again until acknowledged, and eu's, mirrored once its
cluster is back), and no event is lost in either region.

Time to recover: from kafka-us serving again (`up --mirrored` returned) to the last event
purged in both regions.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from invalidator import InvalidatorSettings
from producers import RedisClient
from tests.faults.accounting import record_outcome, scaled
from tests.faults.mirrored import mirrored_run
from tests.faults.services import MirroredProcess, restored_afterwards
from tests.integration.mirrored import MirroredStack

DOWN_S = scaled(8, 30)
BEFORE_STOP = scaled(40, 200)
"""Events per region published before the stop."""
LOCAL_WITHIN_S = 10.0
"""From a publish in eu to its purge in eu, at most, while us's cluster is down."""
RECOVER_WITHIN_S = 240.0


@pytest.mark.long
async def test_us_cluster_down_leaves_eu_purging_and_us_catches_up_after_restart(
    settings: InvalidatorSettings,
    redis_clients: dict[str, RedisClient],
    mirrored_stack: MirroredStack,
    tmp_path: Path,
) -> None:
    kafka_us, mm2_us, mm2_eu = (MirroredProcess(n) for n in ("kafka-us", "mm2-us", "mm2-eu"))
    async with (
        restored_afterwards(kafka_us),
        restored_afterwards(mm2_us),
        restored_afterwards(mm2_eu),
        mirrored_run(mirrored_stack, settings, redis_clients, tmp_path) as run,
    ):
        await run.wait_published(BEFORE_STOP)
        await kafka_us.stop()
        stopped_at = time.monotonic()
        eu_mark = run.counts()["eu"]
        await run.wait_published(10, within=DOWN_S, regions=["eu"])
        await run.wait_purged(
            "eu",
            run.writers["eu"].ids(eu_mark),
            within=LOCAL_WITHIN_S,
            what="eu's events purged in eu while us's cluster is down",
        )
        remaining = DOWN_S - (time.monotonic() - stopped_at)
        await asyncio.sleep(max(0.0, remaining))  # the fault's duration, not synchronisation
        # Still down: every eu event of the outage is purged in eu (the last ones within the
        # local bound, not at the instant of this check).
        while_down = run.writers["eu"].ids(eu_mark)
        await run.wait_purged(
            "eu",
            while_down,
            within=LOCAL_WITHIN_S,
            what="eu's events of the outage purged in eu while us's cluster is down",
        )

        await kafka_us.start_again()
        restarted_at = time.monotonic()
        await run.wait_published(10, within=120, regions=["us"])  # us's writer gets through again
        await run.stop_writing()
        recovered_at = await run.wait_everything_purged(within=RECOVER_WITHIN_S)
        run.check_processes()
    accounting = await run.account()

    record_outcome(
        accounting.outcome(
            f"mirrored: us's Kafka cluster down {DOWN_S} s while both regions write",
            recovered_at - restarted_at,
            note=f"{len(while_down)} eu events purged in eu while it was down",
        )
    )
    accounting.assert_nothing_lost()
    assert accounting.dead_lettered == 0, "valid events were dead-lettered"
