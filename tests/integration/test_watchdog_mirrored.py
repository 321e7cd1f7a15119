"""The consistency watchdog on the mirrored topology, accounted per event id: the watchdog of one
region reads its own cluster only (its region's topics and the other's as MirrorMaker mirrors
them) and looks in every region's Redis; a region whose Redis it cannot reach is unknown, never
stale."""

from __future__ import annotations

import pytest

from contracts import RedisTarget
from contracts.example_orders import CATALOGUE
from invalidator import InvalidatorSettings
from invalidator.watchdog import Outcome
from producers import EventPublisher
from tests.integration.invalidators import REGIONS, running_invalidators
from tests.integration.mirrored import MIRRORED_REGIONS, MirroredStack
from tests.integration.prometheus import free_port
from tests.integration.watchdog import (
    CollectedResults,
    judged,
    orders,
    publish_all,
    running_watchdog,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(600)

HOME = "eu"
"""The region whose watchdog runs (on its own cluster)."""
CUT_OFF = "us"
"""The region whose Redis the second watchdog cannot reach."""
EVENTS_PER_REGION = 10


def _cut_off(watching: InvalidatorSettings) -> InvalidatorSettings:
    """`watching` as a second watchdog (a group of its own) to which CUT_OFF's Redis is a port
    nothing listens on."""
    unreachable = RedisTarget(name=f"{CUT_OFF}-cut", url=f"redis://127.0.0.1:{free_port()}/0")
    return watching.model_copy(
        update={
            "regions": {**watching.regions, CUT_OFF: [unreachable]},
            "watch": watching.watch.model_copy(
                update={"group": f"{watching.group_prefix}-watchdog-cut"}
            ),
        }
    )


async def test_one_regions_watchdog_judges_both_home_regions_events_in_every_redis(
    settings: InvalidatorSettings, mirrored_stack: MirroredStack
) -> None:
    tuned = settings.model_copy(
        update={"watch": settings.watch.model_copy(update={"deadline_s": 10.0, "grace_s": 1.0})}
    )
    watching = mirrored_stack.settings(tuned, HOME)
    healthy, cut_off = CollectedResults(), CollectedResults()
    async with (
        running_invalidators(mirrored_stack.settings(tuned, "eu"), CATALOGUE, regions=["eu"]),
        running_invalidators(mirrored_stack.settings(tuned, "us"), CATALOGUE, regions=["us"]),
        running_watchdog(watching, CATALOGUE, healthy),
        running_watchdog(_cut_off(watching), CATALOGUE, cut_off),
        EventPublisher(mirrored_stack.clusters["eu"], source="orders-eu") as eu_writer,
        EventPublisher(mirrored_stack.clusters["us"], source="orders-us") as us_writer,
    ):
        published = {
            "eu": await publish_all(eu_writer, orders(EVENTS_PER_REGION)),
            "us": await publish_all(us_writer, orders(EVENTS_PER_REGION)),
        }
        event_ids = [event_id for ids in published.values() for event_id in ids]
        await wait_until(
            lambda: judged(healthy, REGIONS, event_ids),
            within=120,
            what=f"{HOME}'s watchdog to judge both home regions' events in every region",
        )
        await wait_until(
            lambda: judged(cut_off, REGIONS, event_ids),
            within=120,
            what=f"the watchdog cut off from {CUT_OFF} to judge every event",
        )
    assert set(MIRRORED_REGIONS) == set(REGIONS)
    for region in REGIONS:
        assert set(healthy.outcomes(region, event_ids).values()) == {Outcome.SEEN}, region
    assert healthy.skipped == []
    reachable = next(region for region in REGIONS if region != CUT_OFF)
    assert set(cut_off.outcomes(reachable, event_ids).values()) == {Outcome.SEEN}
    assert set(cut_off.outcomes(CUT_OFF, event_ids).values()) == {Outcome.UNKNOWN}
    for result in (cut_off.results[(event_id, CUT_OFF)] for event_id in event_ids):
        assert {purge.judgement.outcome for purge in result.purges} == {Outcome.UNKNOWN}
