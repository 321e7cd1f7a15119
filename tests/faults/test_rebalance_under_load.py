"""Rebalances under load: while one process drains a backlog and events keep coming, a second
and a third member join (processes of their own), then one is SIGKILLed and one SIGTERMed.

The killed member's uncommitted purges are redone by the member that inherits its partitions
(at-least-once); the terminated one commits what it purged and leaves. Accounted per event id,
and the group ends committed at the log end.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

from contracts.example_orders import CATALOGUE
from invalidator import InvalidatorSettings
from invalidator.operators import committed_offsets, group_state, start_at_log_end
from producers import RedisClient
from tests.faults.accounting import Outcome, account, record_outcome, scaled
from tests.faults.processes import kill_if_running, spawn_invalidator, stop_process
from tests.faults.workload import Published, produce_backlog
from tests.integration.kafka_tools import caught_up
from tests.waiting import wait_until

BACKLOG = scaled(5_000, 100_000)
LOAD_CHUNK = 500
LOAD_PACE_S = 0.25
"""While members come and go, LOAD_CHUNK more events every LOAD_PACE_S seconds."""


async def test_members_join_and_die_during_a_drain_under_load_lose_nothing(
    settings: InvalidatorSettings,
    redis_clients: dict[str, RedisClient],
    tmp_path: Path,
) -> None:
    group = settings.group_id("eu")
    topics = CATALOGUE.topics()
    start = await start_at_log_end(settings.kafka, group, topics)
    published = Published()
    await produce_backlog(settings.kafka, BACKLOG, published)
    stop_load = asyncio.Event()

    async def load() -> None:
        while not stop_load.is_set():
            await produce_backlog(settings.kafka, LOAD_CHUNK, published)
            await asyncio.sleep(LOAD_PACE_S)  # pacing the stream, not synchronisation

    async def committed_some() -> bool:
        committed = await committed_offsets(settings.kafka, group)
        return any(committed.get(tp, offset) > offset for tp, offset in start.items())

    async def members(count: int) -> bool:
        state = await group_state(settings.kafka, group)
        return state.state == "Stable" and len(state.members) == count

    logs = [tmp_path / f"member-{n}.log" for n in range(3)]
    first = spawn_invalidator(settings, "eu", logs[0])
    second: subprocess.Popen[bytes] | None = None
    third: subprocess.Popen[bytes] | None = None
    loading = asyncio.create_task(load())
    try:
        await wait_until(committed_some, within=90, what=f"the first commit ({logs[0]})")
        second = spawn_invalidator(settings, "eu", logs[1])
        third = spawn_invalidator(settings, "eu", logs[2])
        await wait_until(
            lambda: members(3), within=120, what="three members in the group", interval=0.2
        )
        second.send_signal(signal.SIGKILL)
        terminated = await stop_process(
            third, signal.SIGTERM, within=30, what=f"the SIGTERMed member to exit ({logs[2]})"
        )
        assert terminated == 0, logs[2].read_text()[-3000:]
        await wait_until(
            lambda: members(1), within=120, what="the survivor alone in the group", interval=0.2
        )
        stop_load.set()
        await asyncio.wait_for(loading, timeout=120)
        last_fault = time.monotonic()
        await wait_until(
            lambda: caught_up(settings.kafka, group, topics),
            within=180,
            what=f"the survivor to commit the log end ({logs[0]})",
            interval=0.2,
        )
        recover_s = time.monotonic() - last_fault
        survivor = await stop_process(first, signal.SIGTERM, within=30, what="the survivor's exit")
        assert survivor == 0, logs[0].read_text()[-3000:]
    finally:
        stop_load.set()
        kill_if_running(first, second, third)
        if not loading.done():
            loading.cancel()

    accounting = await account(published.namespaces, {"eu": redis_clients["eu"]})
    record_outcome(
        Outcome(
            scenario="rebalance under load (2 join, 1 SIGKILL, 1 SIGTERM)",
            events=accounting.published,
            lost=len(accounting.lost["eu"]),
            dead_lettered=accounting.dead_lettered,
            recover_s=recover_s,
        )
    )
    accounting.assert_nothing_lost()
