"""Operator commands against the real broker and both regions, through the CLI entry point."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from contracts import Event, EventEnvelope, kafka_clients
from contracts.example_orders import CATALOGUE, COMPANY_ORDERS, OrderCreated, OrderStatusChanged
from contracts.layout import generation_key
from invalidator import InvalidatorSettings, purge_plan
from invalidator.cli import main
from invalidator.operators import (
    commit_group_offsets,
    committed_offsets,
    end_offsets,
    log_bounds,
    offsets_at,
)
from producers import EventPublisher, RedisClient
from tests.integration.cli import Cli
from tests.integration.invalidators import running_invalidators
from tests.integration.kafka_tools import caught_up
from tests.waiting import wait_until

REWIND_EU = ("offsets", "rewind", "--region", "eu")


async def _publish(publisher: EventPublisher, run: str, count: int) -> list[EventEnvelope]:
    return [
        await publisher.publish(
            OrderCreated(order_id=f"o-{run}-{i}", company_id=f"c-{run}-{i % 3}", total_cents=i),
            tenant="acme",
            aggregate_version=1,
        )
        for i in range(count)
    ]


async def _history(settings: InvalidatorSettings, publisher: EventPublisher, run: str) -> datetime:
    """Give the group of region eu a history: batch A, a time T, batch B, all purged."""
    async with running_invalidators(settings, CATALOGUE):
        await _publish(publisher, run + "a", 12)
        boundary = datetime.now(UTC)

        async def clock_moved() -> bool:
            return datetime.now(UTC) - boundary > timedelta(milliseconds=20)

        await wait_until(clock_moved, within=5, what="the clock to pass the boundary")
        await _publish(publisher, run + "b", 12)
        await wait_until(
            lambda: caught_up(settings.kafka, settings.group_id("eu"), CATALOGUE.topics()),
            within=60,
            what="the group to purge its history",
            interval=0.1,
        )
    return boundary


async def test_rewind_by_every_target_kind_moves_the_committed_offsets(
    cli: Cli, settings: InvalidatorSettings, publisher: EventPublisher
) -> None:
    group = settings.group_id("eu")
    boundary = await _history(settings, publisher, uuid.uuid4().hex[:8])
    ends = await end_offsets(settings.kafka, CATALOGUE.topics())
    orders = [tp for tp in ends if tp.topic == "orders.events"]

    status, plan = await cli(
        "offsets", "rewind", "--region", "eu", "--to-datetime", boundary.isoformat(), "--execute"
    )
    assert status == 0 and plan["executed"]
    at_boundary = await offsets_at(settings.kafka, orders, int(boundary.timestamp() * 1000))
    committed = await committed_offsets(settings.kafka, group)
    assert all(committed[tp] == offset for tp, offset in at_boundary.items())
    assert sum(ends[tp] - committed[tp] for tp in orders) == 12  # batch B only
    assert plan["events_to_replay"] == 12

    status, _ = await cli(*REWIND_EU, "--to-latest", "--execute")
    assert status == 0
    assert await committed_offsets(settings.kafka, group) == {**committed, **ends}

    status, plan = await cli(
        *REWIND_EU,
        "--topic",
        "orders.events",
        "--partitions",
        "0,1",
        "--shift-by",
        "-2",
        "--execute",
    )
    assert status == 0 and plan["executed"]
    committed = await committed_offsets(settings.kafka, group)
    for tp in orders:
        expected = max(0, ends[tp] - 2) if tp.partition in (0, 1) else ends[tp]
        assert committed[tp] == expected, tp

    status, plan = await cli(
        *REWIND_EU, "--topic", "orders.events", "--to-offset", "999999999", "--execute"
    )
    assert status == 0 and plan["executed"]
    assert all("clamped to log end" in row["note"] for row in plan["plan"])
    assert all(
        committed_now == ends[tp]
        for tp, committed_now in (await committed_offsets(settings.kafka, group)).items()
        if tp in orders
    )

    status, plan = await cli(*REWIND_EU, "--topic", "orders.events", "--to-earliest", "--execute")
    assert status == 0 and plan["executed"]
    starts = {row["partition"]: row["new"] for row in plan["plan"]}
    committed = await committed_offsets(settings.kafka, group)
    assert all(committed[tp] == starts[tp.partition] for tp in orders)

    status, plan = await cli(*REWIND_EU, "--to-latest", "--execute")
    assert status == 0 and plan["executed"]
    # The command reads the clock itself: its target lies between these two.
    earliest_cut = datetime.now(UTC) - timedelta(seconds=30)
    status, plan = await cli(
        *REWIND_EU, "--topic", "orders.events", "--by-duration", "30s", "--execute"
    )
    latest_cut = datetime.now(UTC) - timedelta(seconds=30)
    assert status == 0 and plan["executed"]
    low = await offsets_at(settings.kafka, orders, int(earliest_cut.timestamp() * 1000))
    high = await offsets_at(settings.kafka, orders, int(latest_cut.timestamp() * 1000))
    committed = await committed_offsets(settings.kafka, group)
    assert status == 0
    assert sum(ends[tp] - committed[tp] for tp in orders) >= 12  # both batches are recent
    for tp in orders:
        assert low[tp] <= committed[tp] <= high[tp], tp


async def test_dry_run_changes_nothing_and_active_members_refuse_execution(
    cli: Cli, settings: InvalidatorSettings, publisher: EventPublisher
) -> None:
    group = settings.group_id("eu")
    await _history(settings, publisher, uuid.uuid4().hex[:8])
    before = await committed_offsets(settings.kafka, group)
    status, plan = await cli(*REWIND_EU, "--to-earliest")
    assert status == 0 and not plan["executed"] and plan["events_to_replay"] > 0
    assert await committed_offsets(settings.kafka, group) == before

    async with running_invalidators(settings, CATALOGUE):
        status, plan = await cli(
            "offsets", "rewind", "--region", "eu", "--to-earliest", "--execute"
        )
    assert status == 1
    assert "active members" in plan["refused"] and group in plan["refused"]
    assert await committed_offsets(settings.kafka, group) == before

    status, shown = await cli("offsets", "show", "--region", "eu")
    region = shown["regions"][0]
    assert status == 0 and region["group"] == group and region["total_lag"] == 0
    assert any(p["committed_record_time"] for p in region["partitions"])


async def test_replay_purges_the_live_plan_of_the_window_and_leaves_the_group_alone(
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    redis_clients: dict[str, RedisClient],
) -> None:
    group = settings.group_id("eu")
    run = uuid.uuid4().hex[:8]
    await _history(settings, publisher, run)  # the group exists and is caught up
    window_start = datetime.now(UTC)
    envelopes = await _publish(publisher, run + "w", 20)
    envelopes.append(
        await publisher.publish(
            OrderStatusChanged(
                order_id=f"o-{run}w-1",
                company_id=f"c-{run}w-1",
                old_status="placed",
                new_status="paid",
            ),
            tenant="acme",
            aggregate_version=2,
        )
    )
    decoded = [CATALOGUE.schemas.decode(e.to_bytes()) for e in envelopes]
    live = purge_plan([(i, e) for i, e in enumerate(decoded) if isinstance(e, Event)], CATALOGUE)
    live_keys = {(ns.namespace.name, ns.key) for ns in live.namespaces}
    committed = await committed_offsets(settings.kafka, group)
    eu = redis_clients["eu"]
    before = {ns: await eu.get(generation_key(ns)) for ns in live.namespaces}

    status, dry = await cli(
        "replay", "--region", "eu", "--from", window_start.isoformat(), "--dry-run"
    )
    assert status == 0 and dry["events"] == len(envelopes)
    assert {(p["namespace"], p["key"]) for p in dry["purges"]} == live_keys
    assert all(p["keys"] == 1 for p in dry["purges"])
    assert {ns: await eu.get(generation_key(ns)) for ns in live.namespaces} == before

    # What would move a group's offsets: a consumer of the replay in a group, or a commit.
    consumers: list[dict[str, Any]] = []
    commits: list[object] = []

    class Watched(AIOKafkaConsumer):  # type: ignore[misc]
        def __init__(self, *topics: str, **options: Any) -> None:
            consumers.append(options)
            super().__init__(*topics, **options)

        async def commit(self, offsets: object = None) -> None:
            commits.append(offsets)
            await super().commit(offsets)

    monkeypatch.setattr(kafka_clients, "AIOKafkaConsumer", Watched)
    status, done = await cli("replay", "--region", "eu", "--from", window_start.isoformat())
    assert status == 0 and done["namespaces"] == len(live_keys) < len(envelopes) * 3
    after = {ns: await eu.get(generation_key(ns)) for ns in live.namespaces}
    assert all(after[ns] is not None and after[ns] != before[ns] for ns in live.namespaces)
    assert consumers and all(options.get("group_id") is None for options in consumers)
    assert commits == []
    assert await committed_offsets(settings.kafka, group) == committed


async def test_manual_purge_is_validated_confirmed_and_regional(
    cli: Cli, redis_clients: dict[str, RedisClient], settings: InvalidatorSettings
) -> None:
    company = f"c-{uuid.uuid4().hex[:8]}"
    bound = COMPANY_ORDERS.bind(company_id=company)
    status, _ = await cli("purge", "--region", "eu", "company_orders", f"company_id={company}")
    assert status == 1  # not a terminal and no --yes: refused
    assert await redis_clients["eu"].get(generation_key(bound)) is None

    status, report = await cli(
        "purge", "--region", "eu", "company_orders", f"company_id={company}", "--yes"
    )
    assert status == 0 and report["key"] == f"company:{company}:orders"
    assert await redis_clients["eu"].get(generation_key(bound)) is not None
    assert await redis_clients["us"].get(generation_key(bound)) is None

    status, _ = await cli("purge", "--region", "eu", "company_orders", "company_id=4*2", "--yes")
    assert status == 2


async def test_unknown_group_topic_and_time_are_clear_errors(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    status = await asyncio.to_thread(main, ["offsets", "rewind", "--region", "eu", "--to-latest"])
    assert status == 2 and "does not exist on the broker" in capsys.readouterr().err
    status = await asyncio.to_thread(
        main, ["replay", "--region", "eu", "--from", "1h", "--topic", "nope", "--dry-run"]
    )
    assert status == 2 and "not an event topic of the catalogue" in capsys.readouterr().err
    status = await asyncio.to_thread(
        main, ["replay", "--region", "eu", "--from", "last tuesday", "--dry-run"]
    )
    err = capsys.readouterr().err
    assert status == 2 and "neither a time" in err and "ISO 8601" in err


async def test_show_says_never_committed_and_rewind_counts_what_uncommitted_partitions_skip(
    cli: Cli, settings: InvalidatorSettings, publisher: EventPublisher
) -> None:
    status, shown = await cli("offsets", "show", "--region", "us")
    us = shown["regions"][0]
    assert status == 0 and us["never_committed"] and us["total_lag"] is None
    assert us["starts_from"] == "earliest"
    assert all(p["lag"] is None for p in us["partitions"])

    # eu committed companies.events only: orders.events is new to it.
    await _publish(publisher, uuid.uuid4().hex[:8], 3)
    bounds = await log_bounds(settings.kafka, CATALOGUE.topics())
    companies = {tp: end for tp, (_, end) in bounds.items() if tp.topic == "companies.events"}
    await commit_group_offsets(settings.kafka, settings.group_id("eu"), companies)
    never = sum(end - start for tp, (start, end) in bounds.items() if tp.topic == "orders.events")
    status, plan = await cli(*REWIND_EU, "--to-latest")
    assert status == 0 and plan["events_skipped"] >= never >= 3
    assert all(
        "never committed" in row["note"] for row in plan["plan"] if row["topic"] == "orders.events"
    )
    status, shown = await cli("offsets", "show", "--region", "eu")
    eu = shown["regions"][0]
    assert not eu["never_committed"] and eu["uncommitted_partitions"] == len(bounds) - len(
        companies
    )
