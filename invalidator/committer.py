"""Offset commits off the hot path: at most one in flight, always the highest purged offsets.

The loop hands over the offsets of every batch whose purges all succeeded and goes on fetching;
the committer sends them in the background. While a commit is in flight, newer offsets wait and
supersede each other, so a slow broker never queues commits; a failed commit is not retried
blindly: its offsets wait for the next batch's commit or the final flush. `flush` commits what
is left and waits: on revoke and on stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Coroutine
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)

Offsets = dict[TopicPartition, int]
Commit = Callable[[Offsets], Coroutine[Any, Any, None]]


class OffsetCommitter:
    """Commits purged offsets of one consumer, one commit at a time, newest offsets first."""

    def __init__(self, commit: Commit, *, name: str) -> None:
        """commit: sends offsets to the group coordinator (the consumer's `commit`).
        name: the group, for log lines.
        """
        self._commit = commit
        self._name = name
        self._pending: Offsets = {}
        self._committed: Offsets = {}
        self._in_flight: asyncio.Task[None] | None = None
        self.failures = 0
        """How many commits failed (the offsets were purged again by whoever read them next)."""

    @property
    def committed(self) -> Offsets:
        """The offsets this committer last committed successfully, per partition."""
        return dict(self._committed)

    def advance(self, offsets: Offsets) -> None:
        """Record offsets whose records are purged everywhere; commit them soon.

        offsets: partition -> the next offset to read (last purged + 1). An offset lower than
            one already recorded for the partition is ignored (offsets never move back here).
        """
        for tp, offset in offsets.items():
            if offset > max(self._pending.get(tp, -1), self._committed.get(tp, -1)):
                self._pending[tp] = offset
        if self._pending and self._in_flight is None:
            self._in_flight = asyncio.create_task(self._commit_pending())

    async def flush(self, partitions: Collection[TopicPartition] | None = None) -> None:
        """Wait for the commit in flight, then commit what is pending, and wait for that too.

        partitions: commit only these (the revoked ones); what is pending for the others stays.
        """
        if self._in_flight is not None:
            await asyncio.shield(self._in_flight)
        if partitions is None:
            offsets, self._pending = self._pending, {}
        else:
            offsets = {tp: self._pending.pop(tp) for tp in partitions if tp in self._pending}
        if offsets:
            await self._send(offsets)

    def forget(self, partitions: Collection[TopicPartition]) -> None:
        """Drop what is known of `partitions` (revoked: their next owner commits them)."""
        for tp in partitions:
            self._pending.pop(tp, None)
            self._committed.pop(tp, None)

    async def _commit_pending(self) -> None:
        try:
            while self._pending:
                offsets, self._pending = self._pending, {}
                if not await self._send(offsets):
                    break  # no blind retry: the next advance or flush carries them
        finally:
            self._in_flight = None

    async def _send(self, offsets: Offsets) -> bool:
        try:
            await self._commit(offsets)
        except KafkaError as error:
            # Until a later commit lands, whoever reads these partitions next (this member or,
            # after a rebalance, another) purges again from the last commit: a duplicate purge
            # costs a miss, a skipped one would cost correctness.
            self.failures += 1
            log.warning("invalidator %s: commit failed (%r)", self._name, error)
            for tp, offset in offsets.items():
                if offset > self._pending.get(tp, -1):
                    self._pending[tp] = offset
            return False
        for tp, offset in offsets.items():
            self._committed[tp] = max(offset, self._committed.get(tp, -1))
        return True
