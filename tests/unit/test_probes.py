"""/healthz and /readyz decided from the loop's state, without a server."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from invalidator.endpoints import liveness, readiness


@dataclass
class LoopState:
    """The loop's attributes the probes read."""

    running: bool = False
    finished: bool = False
    iterated_at: float = field(default_factory=time.monotonic)
    paused_since: float | None = None


def ago(seconds: float) -> float:
    return time.monotonic() - seconds


def test_a_loop_still_joining_its_group_is_alive_until_the_limit() -> None:
    assert liveness(LoopState(iterated_at=ago(5)), max_idle_s=30).ok
    late = liveness(LoopState(iterated_at=ago(31)), max_idle_s=30)
    assert not late.ok
    assert "not started" in late.reason


def test_a_running_loop_is_alive_while_it_iterates() -> None:
    assert liveness(LoopState(running=True), max_idle_s=30).ok
    stuck = liveness(LoopState(running=True, iterated_at=ago(45)), max_idle_s=30)
    assert not stuck.ok
    assert "not iterated for 45 s" in stuck.reason


def test_a_loop_that_returned_is_dead_at_once() -> None:
    probe = liveness(LoopState(finished=True), max_idle_s=30)
    assert not probe.ok
    assert probe.reason == "the loop has stopped"


def test_ready_once_assigned_and_not_paused_too_long() -> None:
    assert not readiness(LoopState(running=True), lambda: False, 30).ok
    assert readiness(LoopState(running=True), lambda: True, 30).ok
    briefly = LoopState(running=True, paused_since=ago(5))
    assert readiness(briefly, lambda: True, 30).ok
    failing = readiness(LoopState(running=True, paused_since=ago(40)), lambda: True, 30)
    assert not failing.ok
    assert "paused for 40 s" in failing.reason
