"""SIGTERM while an invalidator process drains a large backlog: it finishes the batch in hand,
commits exactly what it purged, and leaves the group within a bound; a restarted member finishes.

Every record's position is known (the producer's acknowledgements), so the check is exact: the
events below the committed offsets are the events purged, no more and no fewer.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from contracts.example_orders import CATALOGUE
from contracts.layout import generation_key
from invalidator import InvalidatorSettings
from invalidator.operators import committed_offsets, start_at_log_end
from producers import RedisClient
from tests.faults.accounting import Outcome, account, record_outcome, scaled
from tests.faults.processes import kill_if_running, spawn_invalidator, stop_process
from tests.faults.workload import Published, produce_backlog
from tests.integration.kafka_tools import caught_up
from tests.waiting import wait_until

BACKLOG = scaled(20_000, 100_000)
BATCH = 5_000
EXIT_WITHIN_S = 10
"""From SIGTERM to the process gone, its batch purged, its offsets committed, the group left."""
PROBE = 500
"""The first events whose purge is polled for: one of them purged means the drain began."""


async def test_sigterm_mid_drain_commits_what_was_purged_and_exits_in_time(
    settings: InvalidatorSettings,
    redis_clients: dict[str, RedisClient],
    tmp_path: Path,
) -> None:
    group = settings.group_id("eu")
    topics = CATALOGUE.topics()
    start = await start_at_log_end(settings.kafka, group, topics)
    published = Published()
    await produce_backlog(settings.kafka, BACKLOG, published)
    eu = redis_clients["eu"]
    probe = [generation_key(ns) for ns in list(published.namespaces.values())[:PROBE]]
    stats_file = tmp_path / "stats.json"
    log = tmp_path / "invalidator.log"
    env = {"INVALIDATOR_STATS_FILE": str(stats_file), "INVALIDATOR_BATCH_MAX_RECORDS": str(BATCH)}
    draining = spawn_invalidator(settings, "eu", log, env=env)
    restarted = None
    try:

        async def drain_began() -> bool:
            return bool(await eu.exists(*probe))

        await wait_until(drain_began, within=90, what=f"the first purge ({log})", interval=0.005)
        signalled = time.monotonic()
        status = await stop_process(
            draining, signal.SIGTERM, within=EXIT_WITHIN_S, what=f"the exit on SIGTERM ({log})"
        )
        exit_s = time.monotonic() - signalled
        assert status == 0, log.read_text()[-3000:]

        committed = await committed_offsets(settings.kafka, group)
        covered = {
            event_id
            for event_id, (tp, offset) in published.positions.items()
            if offset < committed.get(tp, start[tp])
        }
        purged = await _purged(eu, published)
        assert covered, "nothing was committed before the exit"
        assert len(covered) < BACKLOG, "the backlog was drained before SIGTERM arrived"
        committed_unpurged = covered - purged
        assert not committed_unpurged, (
            f"{len(committed_unpurged)} events committed but never purged (lost for good)"
        )
        purged_uncommitted = purged - covered
        assert not purged_uncommitted, (
            f"{len(purged_uncommitted)} events purged but not committed on SIGTERM"
        )
        assert json.loads(stats_file.read_text())["events"] == len(covered)

        restarted = spawn_invalidator(settings, "eu", log)
        await wait_until(
            lambda: caught_up(settings.kafka, group, topics),
            within=120,
            what=f"the restarted member to finish ({log})",
            interval=0.2,
        )
        recover_s = time.monotonic() - signalled - exit_s
        assert await stop_process(restarted, signal.SIGTERM, within=EXIT_WITHIN_S, what="exit") == 0
    finally:
        kill_if_running(draining, restarted)

    accounting = await account(published.namespaces, {"eu": eu})
    record_outcome(
        Outcome(
            scenario="SIGTERM mid-drain of a large backlog",
            events=accounting.published,
            lost=len(accounting.lost["eu"]),
            dead_lettered=accounting.dead_lettered,
            recover_s=recover_s,
        )
    )
    accounting.assert_nothing_lost()


async def _purged(client: RedisClient, published: Published) -> set[str]:
    """The event ids whose namespace has a generation token in `client`'s region."""
    accounting = await account(published.namespaces, {"region": client})
    lost = set(accounting.lost["region"])
    return {event_id for event_id in published.namespaces if event_id not in lost}
