"""The link between the regions cut while both regions write (mirrored topology): each region
keeps purging its own events during the cut, the other region's purges wait for the link and
catch up after the heal, and no event is lost in either region.

Time to recover: from the heal to the last event purged in both regions (the writers stop at
the heal, so it is the cut's backlog crossing the link and being purged).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from invalidator import InvalidatorSettings
from producers import RedisClient
from tests.faults.accounting import record_outcome, scaled
from tests.faults.mirrored import mirrored_run
from tests.integration.mirrored import MIRRORED_REGIONS, MirroredStack, other_region

CUT_S = scaled(8, 30)
BEFORE_CUT = scaled(40, 200)
"""Events per region published (and purged in both regions) before the cut."""
LOCAL_WITHIN_S = 10.0
"""From a publish to its purge in its own region, at most, while the link is cut."""
RECOVER_WITHIN_S = 180.0


async def test_link_cut_keeps_local_purges_going_and_remote_ones_catch_up_after_heal(
    settings: InvalidatorSettings,
    redis_clients: dict[str, RedisClient],
    mirrored_stack: MirroredStack,
    tmp_path: Path,
) -> None:
    link = mirrored_stack.link
    try:
        async with mirrored_run(mirrored_stack, settings, redis_clients, tmp_path) as run:
            await run.wait_published(BEFORE_CUT)
            before = run.published()
            for region in MIRRORED_REGIONS:
                await run.wait_purged(
                    region, list(before), within=60, what=f"the events before the cut in {region}"
                )

            await link.cut()
            cut_at = time.monotonic()
            marks = run.counts()  # events acknowledged from here on cannot cross the link
            await run.wait_published(10, within=CUT_S)
            for region in MIRRORED_REGIONS:
                await run.wait_purged(
                    region,
                    run.writers[region].ids(marks[region]),
                    within=LOCAL_WITHIN_S,
                    what=f"{region}'s own events purged in {region} during the cut",
                )
            remaining = CUT_S - (time.monotonic() - cut_at)
            await asyncio.sleep(max(0.0, remaining))  # the fault's duration, not synchronisation

            during = {region: run.writers[region].ids(marks[region]) for region in MIRRORED_REGIONS}
            for region in MIRRORED_REGIONS:
                # Still cut: the last events of the cut get the local bound, not this instant.
                await run.wait_purged(
                    region,
                    during[region],
                    within=LOCAL_WITHIN_S,
                    what=f"{region}'s own events of the cut purged in {region} before the heal",
                )
                remote = await run.purged_in(region, during[other_region(region)])
                assert not remote, f"{region} purged {len(remote)} events it could not receive"

            await link.heal()
            healed_at = time.monotonic()
            await run.stop_writing()
            recovered_at = await run.wait_everything_purged(within=RECOVER_WITHIN_S)
            recover_s = recovered_at - healed_at
            run.check_processes()
        accounting = await run.account()
    finally:
        await mirrored_stack.restore_link()

    cut_events = {region: len(ids) for region, ids in during.items()}
    record_outcome(
        accounting.outcome(
            f"mirrored: link cut {CUT_S} s while both regions write",
            recover_s,
            note=f"{cut_events['eu']} eu + {cut_events['us']} us events during the cut",
        )
    )
    accounting.assert_nothing_lost()
    assert accounting.dead_lettered == 0, "valid events were dead-lettered"
