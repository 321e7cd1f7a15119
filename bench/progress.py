"""How fast a group drains a known range of records, seen from outside: its committed offsets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from bench.processes import BenchProcess
from contracts import KafkaConnection
from invalidator.operators import group_state

POLL_S = 0.1


@dataclass(frozen=True, slots=True)
class Drained:
    """How a group drained `events` records."""

    events: int
    seconds: float
    """From the first commit seen past the start to the last record's commit."""
    events_timed: int
    """The records committed within `seconds` (those of the first commit are not timed)."""
    startup_s: float
    """From the processes' start to the first commit seen."""
    peak_rss_mb: float | None
    complete: bool = True
    """Whether every record was drained (False: stopped at the time budget)."""
    members_joined: bool = True
    """Whether every process was in the group (Stable) before the timed part began; when
    False the whole run is timed, startup and rebalances included."""
    cpu_s: float | None = None
    """The processes' CPU seconds over the timed part (None when it could not be read)."""

    @property
    def events_per_s(self) -> float:
        """The drain rate over the timed part."""
        return self.events_timed / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_event(self) -> float | None:
        """The processes' CPU milliseconds per event over the timed part."""
        if self.cpu_s is None or not self.events_timed:
            return None
        return 1000 * self.cpu_s / self.events_timed


async def wait_drained(
    kafka: KafkaConnection,
    group_id: str,
    *,
    starts: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
    processes: Sequence[BenchProcess],
    started_at: float,
    timeout_s: float,
    members: int = 1,
    budget_s: float | None = None,
) -> Drained:
    """Poll `group_id`'s committed offsets until they reach `ends`; the timing.

    kafka: the brokers.
    group_id: the group draining.
    starts: where the group started (committed before the records were produced).
    ends: the log ends after the records were produced.
    processes: the group's processes (checked alive, RSS sampled).
    started_at: the monotonic time the processes were started.
    timeout_s: how long the drain may take; TimeoutError after that.
    members: how many members the group must have (Stable) before the timing starts, so that
        a scale-out figure does not time one member draining while the others join.
    budget_s: stop timing this long after the first commit, drained or not (a slow baseline
        is measured on what it did: `Drained.complete` is then False).
    """
    # One admin client for the whole wait: offsets.committed_offsets connects anew per call,
    # which on 2 cores took CPU from the processes being measured.
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())
    await admin.start()
    try:
        return await _poll(
            kafka, admin, group_id, starts=starts, ends=ends, processes=processes,
            started_at=started_at, timeout_s=timeout_s, members=members, budget_s=budget_s,
        )  # fmt: skip
    finally:
        await admin.close()


def _cpu_seconds(processes: Sequence[BenchProcess]) -> float | None:
    """The processes' CPU seconds so far, summed (None when one cannot be read)."""
    samples = [process.cpu_seconds() for process in processes]
    return None if None in samples else sum(s for s in samples if s is not None)


async def _committed(admin: AIOKafkaAdminClient, group_id: str) -> dict[TopicPartition, int]:
    offsets = await admin.list_consumer_group_offsets(group_id)
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def _poll(
    kafka: KafkaConnection,
    admin: AIOKafkaAdminClient,
    group_id: str,
    *,
    starts: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
    processes: Sequence[BenchProcess],
    started_at: float,
    timeout_s: float,
    members: int,
    budget_s: float | None,
) -> Drained:
    total = sum(ends[tp] - starts[tp] for tp in ends)
    deadline = started_at + timeout_s
    first: tuple[float, int] | None = None
    cpu_at_first: float | None = None
    joined = members <= 1
    while True:
        for process in processes:
            process.check_running()
            process.sample_rss()
        try:
            if not joined:
                state = await group_state(kafka, group_id)
                joined = state.state == "Stable" and len(state.members) >= members
            committed = await _committed(admin, group_id)
        except KafkaError:
            committed = {}  # the coordinator moves or is loading: ask again
        seen_at = time.monotonic()
        done = sum(min(committed.get(tp, starts[tp]), ends[tp]) - starts[tp] for tp in ends)
        if done > 0 and first is None and joined:
            first = (seen_at, done)
            cpu_at_first = _cpu_seconds(processes)
        if done >= total:
            cpu_now = _cpu_seconds(processes)
            timed_from, already = first or (started_at, 0)
            if seen_at <= timed_from:  # drained at the first look: time the whole run
                timed_from, already = started_at, 0
            peaks = [p.peak_rss_mb for p in processes if p.peak_rss_mb is not None]
            return Drained(
                events=total,
                seconds=seen_at - timed_from,
                events_timed=total - already,
                startup_s=timed_from - started_at,
                peak_rss_mb=max(peaks) if peaks else None,
                members_joined=first is not None,
                cpu_s=(
                    cpu_now - cpu_at_first
                    if cpu_now is not None
                    and cpu_at_first is not None
                    and first is not None
                    and timed_from == first[0]
                    else None
                ),
            )
        if budget_s is not None and first is not None and seen_at - first[0] >= budget_s:
            peaks = [p.peak_rss_mb for p in processes if p.peak_rss_mb is not None]
            return Drained(
                events=done,
                seconds=seen_at - first[0],
                events_timed=done - first[1],
                startup_s=first[0] - started_at,
                peak_rss_mb=max(peaks) if peaks else None,
                complete=False,
            )
        if seen_at > deadline:
            raise TimeoutError(f"{group_id} committed {done} of {total} records in {timeout_s} s")
        await asyncio.sleep(POLL_S)


async def wait_stable(
    kafka: KafkaConnection,
    group_id: str,
    processes: Sequence[BenchProcess],
    *,
    members: int,
    timeout_s: float = 90.0,
) -> float:
    """Wait until `group_id` is Stable with at least `members` members; the seconds it took.

    kafka: the brokers.
    group_id: the group.
    processes: the group's processes (checked alive meanwhile).
    members: how many members must have joined.
    timeout_s: TimeoutError after this long.
    """
    started = time.monotonic()
    while True:
        for process in processes:
            process.check_running()
        state = await group_state(kafka, group_id)
        if state.state == "Stable" and len(state.members) >= members:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{group_id}: {len(state.members)} of {members} joined")
        await asyncio.sleep(0.1)
