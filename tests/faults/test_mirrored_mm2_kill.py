"""MirrorMaker into us (mm2-us) SIGKILLed mid-stream while both regions write, then restarted
(`stack.sh up --mirrored`): nothing is lost; the records it mirrored again after the restart
(from its last committed source offsets) are duplicates on us's `eu.orders.events`, counted by
event id and reported. Duplicates cost a purge more, never correctness.

Time to recover: from MirrorMaker's restart (`up --mirrored` returned: it replicates again) to
the last event purged in both regions.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from invalidator import InvalidatorSettings
from producers import RedisClient
from tests.faults.accounting import record_outcome, scaled
from tests.faults.mirrored import mirrored_run
from tests.faults.services import MirroredProcess, restored_afterwards
from tests.integration.mirrored import MIRRORED_REGIONS, MirroredStack

BEFORE_KILL = scaled(40, 300)
"""Events per region published before the kill."""
WHILE_DOWN = scaled(40, 300)
"""Events per region published between the kill and the restart."""
RECOVER_WITHIN_S = 180.0


@pytest.mark.long
async def test_mirrormaker_killed_mid_stream_and_restarted_loses_nothing(
    settings: InvalidatorSettings,
    redis_clients: dict[str, RedisClient],
    mirrored_stack: MirroredStack,
    tmp_path: Path,
) -> None:
    mm2_us = MirroredProcess("mm2-us")
    async with (
        restored_afterwards(mm2_us),
        mirrored_run(mirrored_stack, settings, redis_clients, tmp_path) as run,
    ):
        await run.wait_published(BEFORE_KILL)
        # Mid-stream: eu's events are crossing into us when MirrorMaker dies.
        await mm2_us.kill()
        await run.wait_published(WHILE_DOWN)
        await mm2_us.start_again()
        restarted_at = time.monotonic()
        await run.stop_writing()
        recovered_at = await run.wait_everything_purged(within=RECOVER_WITHIN_S)
        run.check_processes()
        duplicated_events, extra_records = await run.mirrored_duplicates("us")
    accounting = await run.account()

    eu_events = len(run.writers["eu"].published.namespaces)
    record_outcome(
        accounting.outcome(
            "mirrored: mm2-us SIGKILLed mid-stream and restarted",
            recovered_at - restarted_at,
            note=f"{extra_records} duplicate records of {duplicated_events} of {eu_events} eu "
            "events on us",
        )
    )
    accounting.assert_nothing_lost()
    assert accounting.dead_lettered == 0, "valid events were dead-lettered"
    assert all(accounting.purged[region] == accounting.published for region in MIRRORED_REGIONS)
