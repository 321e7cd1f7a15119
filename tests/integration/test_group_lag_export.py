"""`invalidator offsets export`'s reading of a group's lag from the real broker."""

from __future__ import annotations

from contracts.example_orders import CATALOGUE
from invalidator import InvalidatorSettings
from invalidator.operators import commit_group_offsets, end_offsets
from invalidator.operators._group_lag_export import GroupLagReader
from producers import EventPublisher
from tests.integration.orders import publish_orders


async def test_a_group_that_purged_nothing_yet_lags_since_its_first_waiting_record(
    settings: InvalidatorSettings, publisher: EventPublisher
) -> None:
    group = settings.group_id("eu")
    topics = CATALOGUE.topics()
    await publish_orders(publisher, 12)
    ends = await end_offsets(settings.kafka, topics)
    # Committed at 0 everywhere: nothing was purged, so there is no last purged record.
    await commit_group_offsets(settings.kafka, group, dict.fromkeys(ends, 0))

    lags = await GroupLagReader(settings.kafka, groups={"eu": group}, topics=topics).read()

    assert {lag.partition: lag.records for lag in lags} == ends
    lagging = [lag for lag in lags if lag.records]
    assert lagging
    assert all(lag.seconds is not None and lag.seconds > 0 for lag in lagging), lagging
    assert all(lag.seconds == 0 for lag in lags if not lag.records)
