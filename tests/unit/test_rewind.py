"""Rewind planning without a broker: parsing operator input, clamping, skipped events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import TopicPartition

from contracts.errors import OperatorInputError
from invalidator.operators._rewind import plan_rewind
from invalidator.operators._window import parse_partitions
from invalidator.times import parse_datetime, parse_duration, parse_when

P0, P1, P2 = (TopicPartition("orders.events", n) for n in range(3))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT15M", timedelta(minutes=15)),
        ("pt1h30m", timedelta(hours=1, minutes=30)),
        ("P1D", timedelta(days=1)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("2d", timedelta(days=2)),
    ],
)
def test_durations_in_both_forms(text: str, expected: timedelta) -> None:
    assert parse_duration(text, option="--by-duration") == expected


@pytest.mark.parametrize("text", ["", "15", "fifteen minutes", "PT", "-5m", "1w"])
def test_bad_durations_name_the_accepted_forms(text: str) -> None:
    with pytest.raises(OperatorInputError, match=r"--by-duration .*PT15M"):
        parse_duration(text, option="--by-duration")


def test_datetimes_need_a_zone() -> None:
    assert parse_datetime("2026-11-27T13:45:00Z", option="--to-datetime") == datetime(
        2026, 11, 27, 13, 45, tzinfo=UTC
    )
    with pytest.raises(OperatorInputError, match="has no zone"):
        parse_datetime("2026-11-27T13:45:00", option="--to-datetime")
    with pytest.raises(OperatorInputError, match="is not a time"):
        parse_datetime("yesterday", option="--to-datetime")


def test_when_is_a_time_or_a_duration_ago() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert parse_when("15m", option="--from", now=now) == now - timedelta(minutes=15)
    assert parse_when("2026-11-27T11:00:00+00:00", option="--from", now=now).hour == 11
    with pytest.raises(OperatorInputError, match="neither a time"):
        parse_when("soon", option="--from", now=now)


def test_partitions_option() -> None:
    assert parse_partitions("0,2") == {0, 2}
    assert parse_partitions(None) is None
    with pytest.raises(OperatorInputError, match="0,1,5"):
        parse_partitions("a,b")


def test_plan_clamps_to_the_log_and_says_so() -> None:
    bounds = {P0: (100, 200), P1: (0, 50), P2: (10, 10)}
    committed = {P0: 180, P1: 50}
    plan = plan_rewind(committed, bounds, {P0: 5, P1: 70, P2: 10})
    by_partition = {row.partition: row for row in plan}
    assert (by_partition[P0].new, by_partition[P0].replayed) == (100, 80)
    assert "clamped to log start 100" in by_partition[P0].note
    assert (by_partition[P1].new, by_partition[P1].replayed) == (50, 0)
    assert "clamped to log end 50" in by_partition[P1].note
    assert by_partition[P2].current is None and by_partition[P2].new == 10


def test_plan_warns_when_moving_forward_skips_unpurged_events() -> None:
    plan = plan_rewind({P0: 120}, {P0: (100, 200)}, {P0: 200})
    assert plan[0].replayed == -80
    assert "skips 80 events not purged yet" in plan[0].note


def test_moving_forward_over_a_partition_never_committed_counts_what_it_skips() -> None:
    # P0 committed at 120; P1 never committed, and a new member would start at its log start.
    bounds = {P0: (100, 200), P1: (40, 100)}
    plan = plan_rewind({P0: 120}, bounds, {P0: 200, P1: 100}, uncommitted_starts={P1: 40})
    by_partition = {row.partition: row for row in plan}
    assert by_partition[P1].current is None and by_partition[P1].replayed == -60
    assert "never committed (would start at 40)" in by_partition[P1].note
    assert "skips 60 events not purged yet" in by_partition[P1].note
    assert sum(-row.replayed for row in plan if row.replayed < 0) == 140
