"""Replaying a window of events into purges without moving any group's offsets.

The window is read with a consumer outside every group; its events are planned exactly as the
live loop plans a batch, but coalesced over the whole window, so an hour of events becomes each
concrete namespace once, not an hour of purges.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from contracts.catalogue import Catalogue
from contracts.connection_checks import check_redis
from contracts.connections import KafkaConnection, RedisTarget
from contracts.decoding import Rejected, RejectReason
from contracts.namespaces import BoundNamespace
from invalidator.operators._window import Window, read_window, window_size
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
    window: Window,
    *,
    progress: Progress | None = None,
) -> ReplayPlan:
    """Read `[start, end)` of every partition and plan its purges (no Redis involved).

    window: per partition, the first offset to read and the offset to stop before.
    progress: told ("read", records read, records in the window).
    """
    plan = ReplayPlan()
    total = window_size(window)
    async for records in read_window(kafka, window):
        decoded = []
        for record in records:
            plan.records += 1
            outcome = catalogue.schemas.decode(record.value, record.headers)
            if isinstance(outcome, Rejected):
                plan.rejected[outcome.reason.value] += 1
            else:
                decoded.append((record.offset, outcome))
        batch_plan = purge_plan(decoded, catalogue)
        plan.events += batch_plan.planned
        plan.rejected[RejectReason.UNPLANNABLE.value] += len(batch_plan.unplannable)
        plan.namespaces.update(dict.fromkeys(batch_plan.namespaces))
        if progress is not None:
            progress("read", plan.records, total)
    plan.rejected = +plan.rejected  # drop zero counts
    return plan


async def raise_if_refused(targets: Sequence[RedisTarget], failed: Mapping[str, Exception]) -> None:
    """When a target whose purge failed refused the connection's TLS or login, raise that
    refusal (`ConnectionSecurityError`, naming the endpoint and the cause); an outage or a
    missing permission stays a failed purge."""
    for target in targets:
        if target.name in failed:
            await check_redis(target)


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
