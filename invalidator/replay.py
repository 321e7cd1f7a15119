"""Replaying a window of events into purges without moving any group's offsets.

The window is read with a consumer outside every group; its events are planned exactly as the
live loop plans a batch, but coalesced over the whole window, so an hour of events becomes each
concrete namespace once, not an hour of purges.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts.catalogue import BoundNamespace, Catalogue
from contracts.connections import KafkaConnection
from contracts.decoding import Rejected
from invalidator.planner import grouped, purge_plan
from invalidator.targets import RegionTargets

Progress = Callable[[str, int, int], None]
"""Called with (phase, done, total) as a replay reads and purges."""

_PURGE_CHUNK = 500


@dataclass
class ReplayPlan:
    """What a window purges, coalesced, and what it could not decode."""

    records: int = 0
    events: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    namespaces: dict[BoundNamespace, None] = field(default_factory=dict)


async def plan_window(
    kafka: KafkaConnection,
    catalogue: Catalogue,
    window: dict[TopicPartition, tuple[int, int]],
    *,
    progress: Progress | None = None,
) -> ReplayPlan:
    """Read `[start, end)` of every partition and plan its purges (no Redis involved).

    window: per partition, the first offset to read and the offset to stop before.
    progress: told ("read", records read, records in the window).
    """
    plan = ReplayPlan()
    todo = {tp: bounds for tp, bounds in window.items() if bounds[1] > bounds[0]}
    total = sum(end - start for start, end in todo.values())
    if not todo:
        return plan
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **kafka.client_kwargs())
    await consumer.start()
    try:
        consumer.assign(list(todo))
        for tp, (start, _) in todo.items():
            consumer.seek(tp, start)
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=1000, max_records=5000)
            decoded = []
            for tp, records in batch.items():
                end = todo[tp][1]
                for record in records:
                    if record.offset >= end:
                        break
                    plan.records += 1
                    outcome = catalogue.schemas.decode(record.value, record.headers)
                    if isinstance(outcome, Rejected):
                        plan.rejected[outcome.reason.value] += 1
                    else:
                        decoded.append((record.offset, outcome))
            for tp in list(todo):
                # The position, not the last record, says when a partition is done: offsets
                # can have gaps (transaction markers, compaction).
                if await consumer.position(tp) >= todo[tp][1]:
                    del todo[tp]
                    consumer.pause(tp)
            batch_plan = purge_plan(decoded, catalogue)
            plan.events += batch_plan.planned
            plan.rejected["unplannable"] += len(batch_plan.unplannable)
            plan.namespaces.update(dict.fromkeys(batch_plan.namespaces))
            if progress is not None:
                progress("read", plan.records, total)
    finally:
        await consumer.stop()
    plan.rejected = +plan.rejected  # drop zero counts
    return plan


async def purge_planned(
    targets: RegionTargets,
    namespaces: Sequence[BoundNamespace],
    *,
    progress: Progress | None = None,
) -> dict[str, Exception]:
    """Purge `namespaces` on every target of the region in chunks; returns each failed target
    with its (last) error."""
    failed: dict[str, Exception] = {}
    for start in range(0, len(namespaces), _PURGE_CHUNK):
        failed.update(await targets.purge(grouped(namespaces[start : start + _PURGE_CHUNK])))
        if progress is not None:
            progress("purge", min(start + _PURGE_CHUNK, len(namespaces)), len(namespaces))
    return failed
