"""The mirrored topology without services: MirrorMaker's topic names, the setting that reads
them, the age of remote events at purge, and an invalidator that waits for mirrored topics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import pytest
from aiokafka import TopicPartition

from contracts import RedisTarget
from contracts.errors import SettingsError
from contracts.example_orders import CATALOGUE
from contracts.settings import read_settings
from contracts.topics import mirror_origin, mirrored_topic
from invalidator import Invalidator, InvalidatorSettings, awaited_topics
from invalidator.loop import InvalidationLoop
from invalidator.outcome import BatchOutcome
from tests.unit.loop_fakes import (
    FAST,
    P0,
    FakeConsumer,
    FakeDeadLetters,
    FakeTargets,
    invalidator_parts,
    order_record,
    run_until,
    until,
)

MIRRORED = TopicPartition("eu.orders.events", 0)
REGIONS = {"us": [RedisTarget(name="us-main", url="redis://127.0.0.1:1/0")]}


def test_a_mirrored_topic_is_named_after_its_source_and_traced_back_to_it() -> None:
    assert mirrored_topic("eu", "orders.events") == "eu.orders.events"
    assert mirror_origin("eu.orders.events", ["eu"]) == ("eu", "orders.events")
    assert mirror_origin("orders.events", ["eu"]) is None  # `orders` is not a source region
    assert mirror_origin("ap.orders.events", ["eu"]) is None  # not mirrored from here


def test_the_invalidator_reads_its_own_topics_and_those_mirrored_from_each_source() -> None:
    settings = InvalidatorSettings(regions=REGIONS, mirrored_from=["eu", "ap"])
    assert settings.event_topics(CATALOGUE) == [
        "companies.events",
        "orders.events",
        "eu.companies.events",
        "eu.orders.events",
        "ap.companies.events",
        "ap.orders.events",
    ]
    assert InvalidatorSettings(regions=REGIONS).event_topics(CATALOGUE) == CATALOGUE.topics()


def test_a_source_that_is_no_mirrormaker_alias_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INVALIDATOR_MIRRORED_FROM", '["eu.west"]')
    with pytest.raises(SettingsError, match=r"INVALIDATOR_MIRRORED_FROM: .*'eu\.west' is not a"):
        read_settings(InvalidatorSettings)


class _Ages:
    def __init__(self) -> None:
        self.remote: list[Mapping[str, float]] = []

    def batch_purged(self, outcome: BatchOutcome) -> None:
        self.remote.append(outcome.remote_age_s())


async def test_the_age_of_mirrored_events_at_purge_is_reported_per_source_region() -> None:
    published_ms = int(time.time() * 1000) - 5000  # five seconds ago, in eu
    old = order_record(MIRRORED, 0)
    old.timestamp = published_ms
    records: dict[TopicPartition, list[Any]] = {
        MIRRORED: [old],
        P0: [order_record(P0, 0)],
    }
    consumer = FakeConsumer(records)
    ages = _Ages()
    loop = InvalidationLoop(
        consumer,
        FakeTargets(consumer),
        FakeDeadLetters(),
        catalogue=CATALOGUE,
        name="test",
        tuning=FAST,
        listeners=[ages],
        mirrored_from=["eu"],
    )
    await run_until(loop, lambda: consumer.committed() == {MIRRORED: 1, P0: 1})
    assert len(ages.remote) == 1 and set(ages.remote[0]) == {"eu"}
    assert 5.0 <= ages.remote[0]["eu"] < 60.0


class _ConsumerOfACluster:
    """A group consumer of `test_invalidator` whose cluster gains topics when told."""

    def __init__(self, inner: Any, present: set[str]) -> None:
        self.inner = inner
        self.present = present
        self.subscriptions: list[list[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def subscribe(self, *, topics: list[str], listener: Any) -> None:
        self.subscriptions.append(list(topics))
        self.inner.subscribe(topics=topics, listener=listener)

    async def topics(self) -> set[str]:
        return set(self.present)


async def test_an_absent_mirrored_topic_is_waited_for_then_subscribed_to(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(awaited_topics, "POLL_S", 0.01)
    settings = InvalidatorSettings(regions=REGIONS, mirrored_from=["eu"], commit_interval_ms=0)
    parts, _, _, _ = invalidator_parts({P0: [order_record(P0, 0)]})
    cluster = _ConsumerOfACluster(parts.consumer, present=set(CATALOGUE.topics()))
    invalidator = Invalidator(settings, region="us", catalogue=CATALOGUE)
    running = asyncio.create_task(
        invalidator.run_on(
            parts.__class__(cluster, parts.targets, parts.dead_letters),  # type: ignore[arg-type]
            absent_topics=["eu.orders.events", "eu.companies.events"],
        )
    )
    await until(lambda: "waiting for topic(s) eu.companies.events,eu.orders.events" in caplog.text)
    assert cluster.subscriptions == [["companies.events", "orders.events"]]
    cluster.present.add("eu.orders.events")
    await until(lambda: len(cluster.subscriptions) == 2)
    assert cluster.subscriptions[1] == ["companies.events", "orders.events", "eu.orders.events"]
    cluster.present.add("eu.companies.events")
    await until(lambda: len(cluster.subscriptions) == 3)
    assert cluster.subscriptions[2] == settings.event_topics(CATALOGUE)
    invalidator.stop()
    await asyncio.wait_for(running, timeout=5)
