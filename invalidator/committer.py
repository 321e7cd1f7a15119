"""Offset commits off the hot path: at most one in flight, always the highest purged offsets.

The loop hands over the offsets of every batch whose purges all succeeded and goes on fetching;
the committer sends them in the background, at most once per interval. While a commit is in
flight or waiting, newer offsets supersede older ones, so a slow broker never queues commits; a
failed commit is not retried blindly: its offsets wait for the next commit or the final flush.
`flush` commits what is left at once and waits: on revoke and on stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Coroutine
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)

Offsets = dict[TopicPartition, int]
Commit = Callable[[Offsets], Coroutine[Any, Any, None]]


class OffsetCommitter:
    """Commits purged offsets of one consumer, one commit at a time, newest offsets first."""

    def __init__(self, commit: Commit, *, name: str, interval_s: float = 0.0) -> None:
        """commit: sends offsets to the group coordinator (the consumer's `commit`).
        name: the group, for log lines.
        interval_s: the least time between the starts of two commits (a flush does not wait):
            fewer commits cost the broker and this process less, and a crash replays at most
            this much more (a replayed purge costs a cache miss).
        """
        self._commit = commit
        self._name = name
        self._interval_s = interval_s
        self._pending: Offsets = {}
        self._committed: Offsets = {}
        self._in_flight: asyncio.Task[None] | None = None
        self._sending = False
        self._last_sent = -float("inf")
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
        self._schedule()

    async def flush(self, partitions: Collection[TopicPartition] | None = None) -> None:
        """Wait for the commit in flight, then commit what is pending now, and wait for that.

        partitions: commit only these (the revoked ones); what is pending for the others stays.
        """
        task = self._in_flight
        if task is not None:
            if self._sending:
                await asyncio.shield(task)
            else:  # still waiting out the interval: nothing was sent, commit right away
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if partitions is None:
            offsets, self._pending = self._pending, {}
        else:
            offsets = {tp: self._pending.pop(tp) for tp in partitions if tp in self._pending}
        if offsets:
            await self._send(offsets)
        self._schedule()

    def _schedule(self) -> None:
        if self._pending and self._in_flight is None:
            self._in_flight = asyncio.create_task(self._commit_pending())

    def forget(self, partitions: Collection[TopicPartition]) -> None:
        """Drop what is known of `partitions` (revoked: their next owner commits them)."""
        for tp in partitions:
            self._pending.pop(tp, None)
            self._committed.pop(tp, None)

    async def _commit_pending(self) -> None:
        try:
            while self._pending:
                wait_s = self._last_sent + self._interval_s - time.monotonic()
                if wait_s > 0:
                    await asyncio.sleep(wait_s)  # the commit interval; a flush cuts it short
                offsets, self._pending = self._pending, {}
                if not await self._send(offsets):
                    break  # no blind retry: the next advance or flush carries them
        finally:
            self._in_flight = None

    async def _send(self, offsets: Offsets) -> bool:
        self._sending = True
        self._last_sent = time.monotonic()
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
        finally:
            self._sending = False
        for tp, offset in offsets.items():
            self._committed[tp] = max(offset, self._committed.get(tp, -1))
        return True
