"""SIGKILL between purge and commit: the restart purges again and no event is lost."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

from contracts.example_orders import CATALOGUE, ORDER, OrderCreated
from contracts.layout import generation_key
from invalidator import InvalidatorSettings
from invalidator.operators import committed_offsets, start_at_log_end
from producers import EventPublisher, RedisClient
from tests.faults.accounting import Outcome, record_outcome
from tests.faults.processes import (
    exited,
    file_exists,
    kill_if_running,
    spawn,
    spawn_invalidator,
    stop_process,
)
from tests.integration.kafka_tools import caught_up
from tests.waiting import wait_until


async def test_sigkill_after_purge_before_commit_repurges_and_loses_nothing(
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    redis_clients: dict[str, RedisClient],
    tmp_path: Path,
) -> None:
    group = settings.group_id("eu")
    start = await start_at_log_end(settings.kafka, group, CATALOGUE.topics())
    marker = tmp_path / "purged.json"
    log = tmp_path / "invalidator.log"
    held = spawn(["tests/faults/hold_before_commit.py", "eu", str(marker)], settings, log)
    try:
        await wait_until(
            file_exists(marker.with_suffix(".assigned")), within=60, what=f"assignment ({log})"
        )
        run = uuid.uuid4().hex[:8]
        events = {
            (
                await publisher.publish(
                    OrderCreated(order_id=f"o-{run}-{i}", company_id=f"c-{run}", total_cents=i),
                    tenant="acme",
                    aggregate_version=1,
                )
            ).event_id: ORDER.bind(order_id=f"o-{run}-{i}")
            for i in range(300)
        }
        await wait_until(file_exists(marker), within=60, what=f"the first purge ({log})")
        eu = redis_clients["eu"]
        at_kill = {
            event_id: await eu.get(generation_key(namespace))
            for event_id, namespace in events.items()
        }
        purged_before_kill = {e for e, generation in at_kill.items() if generation is not None}
        assert purged_before_kill, "the held batch purged nothing"
        await stop_process(held, signal.SIGKILL, within=30, what="the killed invalidator to exit")
    finally:
        kill_if_running(held)

    committed = await committed_offsets(settings.kafka, group)
    assert all(committed.get(tp, -1) == offset for tp, offset in start.items()), (
        "the killed invalidator committed past what it had not finished"
    )

    restarted = spawn_invalidator(settings, "eu", log)
    restarted_at = time.monotonic()
    try:
        await wait_until(
            lambda: caught_up(settings.kafka, group, CATALOGUE.topics()),
            within=90,
            what=f"the restarted invalidator to catch up ({log})",
            interval=0.2,
        )
        recover_s = time.monotonic() - restarted_at
        after = {
            event_id: await eu.get(generation_key(namespace))
            for event_id, namespace in events.items()
        }
        lost = [event_id for event_id, generation in after.items() if generation is None]
        record_outcome(
            Outcome("SIGKILL between purge and commit", len(events), len(lost), 0, recover_s)
        )
        assert lost == [], f"events never purged: {lost[:5]}"
        not_repurged = [e for e in purged_before_kill if after[e] == at_kill[e]]
        assert not_repurged == [], f"purged before the kill but not again: {not_repurged[:5]}"
        restarted.send_signal(signal.SIGTERM)
        await wait_until(lambda: exited(restarted), within=30, what="a graceful stop on SIGTERM")
        assert restarted.returncode == 0, log.read_text()[-3000:]
    finally:
        if restarted.poll() is None:
            restarted.kill()
