"""The consistency watchdog against the real stack, accounted per event id: a healthy run, an
invalidator that commits without purging one event type in one region, purges later than the
deadline, a region that cannot be reached, and generation keys that expired."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.orders_load import bare_producer, order_record
from contracts.events import HEADER_EVENT_ID
from contracts.example_orders import CATALOGUE, EXAMPLE_CATALOGUE, OrderCancelled
from contracts.topics import ORDERS, mirrored_topic
from invalidator import Invalidator, InvalidatorSettings, awaited_topics
from invalidator.operators import (
    EXIT_NOT_SEEN,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    committed_offsets,
    start_at_log_end,
)
from invalidator.watchdog import Outcome
from producers import EventPublisher, RedisClient
from tests.faults.processes import kill_if_running, stop_process
from tests.integration.cli import Cli, spawn_cli
from tests.integration.endpoints import http_get
from tests.integration.invalidators import REGIONS, running_invalidators
from tests.integration.kafka_tools import delete_topic, ensure_topic
from tests.integration.prometheus import free_port
from tests.integration.watchdog import (
    CollectedResults,
    give_generations,
    judged,
    orders,
    passed,
    publish_all,
    running_watchdog,
    without_purges_of,
)
from tests.waiting import wait_until


def _cancellations(count: int) -> list[OrderCancelled]:
    run = uuid.uuid4().hex[:8]
    return [
        OrderCancelled(order_id=f"x-{run}-{i}", company_id=f"k-{run}-{i}", reason="test")
        for i in range(count)
    ]


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _tuned(monkeypatch: pytest.MonkeyPatch, *, deadline_s: float, grace_s: float) -> None:
    """The one-shot `watch` (run through `cli`) reads its settings from the environment. A
    deadline of 5 s leaves a loaded machine's invalidators time to purge; the one-shot waits
    for it, and its grace, only for what it has not seen."""
    monkeypatch.setenv("INVALIDATOR_WATCH__DEADLINE_S", str(deadline_s))
    monkeypatch.setenv("INVALIDATOR_WATCH__GRACE_S", str(grace_s))


async def test_a_healthy_run_sees_every_purge_and_raises_no_alarm(
    settings: InvalidatorSettings, publisher: EventPublisher, cli: Cli
) -> None:
    served = settings.model_copy(
        update={"watch": settings.watch.model_copy(update={"metrics_port": 0})}
    )
    collected = CollectedResults()
    since = _now_iso()
    async with (
        running_invalidators(settings, CATALOGUE),
        running_watchdog(served, CATALOGUE, collected) as watchdog,
    ):
        started_at = await committed_offsets(settings.kafka, watchdog.group)
        event_ids = await publish_all(publisher, orders(300))
        await wait_until(
            lambda: judged(collected, REGIONS, event_ids),
            within=60,
            what="the watchdog to judge 300 events in both regions",
        )
        status, metrics = await http_get(watchdog.metrics_address, "/metrics")
        assert status == 200
        assert (await http_get(watchdog.metrics_address, "/readyz"))[0] == 200
    for region in REGIONS:
        assert set(collected.outcomes(region, event_ids).values()) == {Outcome.SEEN}, region
        for outcome, count in (("seen", 300), ("missing", 0), ("unknown", 0)):
            assert (
                f'invalidator_watchdog_events_total{{outcome="{outcome}",region="{region}"}} '
                f"{count:.1f}"
            ) in metrics
    assert collected.skipped == []
    # Its own group committed what it read; the invalidators' groups are theirs alone.
    assert watchdog.group not in {settings.group_id(region) for region in REGIONS}
    read = await committed_offsets(settings.kafka, watchdog.group)
    assert sum(read.values()) - sum(started_at.values()) == 300

    status, summary = await cli("watch", "--since", since)
    assert status == EXIT_OK, summary
    assert (summary["missing"], summary["unknown"]) == (0, 0)
    for region in REGIONS:
        figures = summary["regions"][region]
        assert figures["events"]["seen"] == 300 and figures["not_seen"] == []
        assert figures["seen_within"]["10s"] == 1.0


async def test_the_watch_command_runs_until_sigterm_and_serves_its_metrics(
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    invalidators: dict[str, Invalidator],
    tmp_path: Path,
) -> None:
    log = tmp_path / "watch.log"
    port = free_port()
    await start_at_log_end(
        settings.kafka, settings.watchdog_group(), settings.event_topics(CATALOGUE)
    )
    env = {
        "INVALIDATOR_GROUP_PREFIX": settings.group_prefix,
        "INVALIDATOR_CATALOGUE": EXAMPLE_CATALOGUE,
        "INVALIDATOR_WATCH__METRICS_PORT": str(port),
    }
    process = spawn_cli("watch", env=env, output=log)
    try:

        async def all_seen() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"invalidator watch exited: {log.read_text()[-3000:]}")
            try:
                status, metrics = await http_get(("127.0.0.1", port), "/metrics")
            except OSError:
                return False  # not serving yet
            return status == 200 and all(
                f'invalidator_watchdog_events_total{{outcome="seen",region="{region}"}} 20.0'
                in metrics
                for region in REGIONS
            )

        await wait_until(
            lambda: _ready(("127.0.0.1", port)), within=60, what="the watchdog's /readyz"
        )
        await publish_all(publisher, orders(20))
        await wait_until(all_seen, within=60, what="20 events seen in both regions on /metrics")
        status = await stop_process(process, signal.SIGTERM, within=60, what="the exit")
    finally:
        kill_if_running(process)
    assert status == 0, log.read_text()[-3000:]
    assert f"watchdog {settings.watchdog_group()} stopped" in log.read_text()


async def _ready(address: tuple[str, int]) -> bool:
    try:
        return (await http_get(address, "/readyz"))[0] == 200
    except OSError:
        return False


async def test_a_region_that_commits_without_purging_one_event_type_is_caught_exactly(
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    redis_clients: dict[str, RedisClient],
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created, cancelled = orders(40), _cancellations(20)
    await give_generations(redis_clients, [*created, *cancelled])
    since = _now_iso()
    async with (
        running_invalidators(settings, CATALOGUE, regions=["eu"]),
        running_invalidators(settings, without_purges_of(OrderCancelled), regions=["us"]),
    ):
        created_ids = await publish_all(publisher, created)
        cancelled_ids = await publish_all(publisher, cancelled)
        _tuned(monkeypatch, deadline_s=5, grace_s=1)
        status, summary = await cli("watch", "--since", since)
    assert status == EXIT_NOT_SEEN, summary
    eu, us = summary["regions"]["eu"], summary["regions"]["us"]
    assert eu["not_seen"] == [] and eu["events"]["seen"] == 60
    assert {m["event_id"] for m in us["not_seen"]} == set(cancelled_ids)
    assert all(m["event_type"] == "orders.OrderCancelled" for m in us["not_seen"])
    # Each cancellation purges its company's list and stats and its order: three namespaces.
    assert len(us["not_seen"]) == 3 * len(cancelled_ids)
    assert (us["events"]["missing"], us["events"]["seen"]) == (20, len(created_ids))
    assert summary["missing"] == 60


async def test_a_purge_after_the_deadline_is_late_not_missing(
    settings: InvalidatorSettings, publisher: EventPublisher
) -> None:
    tuned = settings.model_copy(
        update={"watch": settings.watch.model_copy(update={"deadline_s": 1.0, "grace_s": 30.0})}
    )
    collected = CollectedResults()
    # The late region's group starts here, before the events, and runs only after the deadline.
    await start_at_log_end(tuned.kafka, tuned.group_id("us"), tuned.event_topics(CATALOGUE))
    async with (
        running_invalidators(tuned, CATALOGUE, regions=["eu"]),
        running_watchdog(tuned, CATALOGUE, collected),
    ):
        event_ids = await publish_all(publisher, orders(20))
        published_at = time.time()
        await wait_until(
            lambda: judged(collected, ["eu"], event_ids),
            within=30,
            what="the watchdog to judge the events in eu",
        )
        await wait_until(
            lambda: passed(published_at + 1.5),
            within=10,
            what="the deadline to pass with us not purged",
        )
        assert not any((event_id, "us") in collected.results for event_id in event_ids)
        async with running_invalidators(tuned, CATALOGUE, regions=["us"], from_log_end=False):
            await wait_until(
                lambda: judged(collected, ["us"], event_ids),
                within=40,
                what="the watchdog to judge the late purges in us",
            )
    assert set(collected.outcomes("eu", event_ids).values()) == {Outcome.SEEN}
    assert set(collected.outcomes("us", event_ids).values()) == {Outcome.LATE}
    for event_id in event_ids:
        lag_ms = collected.results[(event_id, "us")].judgement.lag_ms
        assert lag_ms is not None and lag_ms > 1000


async def test_an_unreachable_region_is_unknown_not_stale_and_its_password_stays_out(
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    regions = json.loads(os.environ["INVALIDATOR_REGIONS"])
    regions["down"] = [
        {"name": "down-main", "url": f"redis://127.0.0.1:{free_port()}/0", "password": password}
    ]
    since = _now_iso()
    async with running_invalidators(settings, CATALOGUE):
        event_ids = await publish_all(publisher, orders(10))
        monkeypatch.setenv("INVALIDATOR_REGIONS", json.dumps(regions))
        _tuned(monkeypatch, deadline_s=5, grace_s=0.5)
        status, summary = await cli("watch", "--since", since)
    assert status == EXIT_UNAVAILABLE, summary
    down = summary["regions"]["down"]
    assert down["events"]["unknown"] == len(event_ids)
    assert (down["events"]["missing"], down["not_seen"]) == (0, [])
    assert down["seen_within"] == dict.fromkeys(down["seen_within"])  # nothing judged
    for region in REGIONS:
        assert summary["regions"][region]["events"]["seen"] == len(event_ids)
    assert "down-main" in caplog.text  # its log lines name the target ...
    assert password not in json.dumps(summary) and password not in caplog.text  # ... not this


async def test_an_absent_generation_key_is_not_judged_an_older_token_is_missing(
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    redis_clients: dict[str, RedisClient],
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No invalidator runs: nothing is purged. Half the events' namespaces hold a token older
    # than the event (a purge missing), the others none (expired by their TTL).
    kept, expired = orders(10), orders(10)
    await give_generations(redis_clients, kept)
    since = _now_iso()
    kept_ids = await publish_all(publisher, kept)
    expired_ids = await publish_all(publisher, expired)
    _tuned(monkeypatch, deadline_s=1, grace_s=0.5)
    status, summary = await cli("watch", "--since", since)
    assert status == EXIT_NOT_SEEN, summary
    for region in REGIONS:
        figures = summary["regions"][region]
        assert {m["event_id"] for m in figures["not_seen"]} == set(kept_ids)
        assert figures["events"]["expired_not_judged"] == len(expired_ids)
        assert figures["events"]["missing"] == len(kept_ids)
        assert figures["purges"]["expired_not_judged"] == 3 * len(expired_ids)
        assert figures["seen_within"]["10s"] == 0.0


async def test_a_mirrored_topic_that_appears_later_is_read_from_its_start(
    settings: InvalidatorSettings,
    redis_clients: dict[str, RedisClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A region MirrorMaker does not mirror from yet: the watchdog starts without its topics,
    subscribes to one once it exists, and reads it from its start (a record written before the
    group took the new partitions is judged too). No invalidator runs: its namespaces hold a
    token older than the event, so the event is missing in every region, judged."""
    monkeypatch.setattr(awaited_topics, "POLL_S", 0.1)
    absent_region = "ap" + uuid.uuid4().hex[:6]
    mirroring = settings.model_copy(
        update={
            "mirrored_from": [absent_region],
            "watch": settings.watch.model_copy(update={"deadline_s": 1.0, "grace_s": 0.5}),
        }
    )
    absent = [mirrored_topic(absent_region, topic) for topic in CATALOGUE.topics()]
    event = orders(1)[0]
    await give_generations(redis_clients, [event])
    record = order_record(event.company_id, event.order_id)
    collected = CollectedResults()
    try:
        async with running_watchdog(mirroring, CATALOGUE, collected, absent_topics=absent):
            topic = mirrored_topic(absent_region, ORDERS)
            await ensure_topic(settings.kafka, topic, partitions=3)
            producer = bare_producer(settings.kafka, linger_ms=0)
            await producer.start()
            try:
                await producer.send_and_wait(
                    topic, record.value, key=record.key, headers=record.headers
                )
            finally:
                await producer.stop()
            event_id = dict(record.headers)[HEADER_EVENT_ID].decode()
            await wait_until(
                lambda: judged(collected, REGIONS, [event_id]),
                within=60,
                what="the event of the topic that appeared, judged in every region",
            )
        for region in REGIONS:
            assert collected.outcomes(region, [event_id]) == {event_id: Outcome.MISSING}
    finally:
        await delete_topic(settings.kafka, mirrored_topic(absent_region, ORDERS))
