"""The invalidation loop without services: commit placement, overlap, pause and retry, order.

A fake consumer, fake targets and a fake dead-letter topic stand in for Kafka and Redis; the
loop's logic is the real one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    CommitFailedError,
    KafkaConnectionError,
    KafkaTimeoutError,
    NotEnoughReplicasError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from redis.exceptions import ResponseError

from contracts.decoding import RejectReason
from contracts.example_orders import CATALOGUE
from invalidator.committer import OffsetCommitter
from invalidator.failures import FailureKind, dead_letter_failure_kind
from invalidator.loop import LoopTuning
from invalidator.outcome import BatchOutcome
from invalidator.settings import InvalidatorSettings
from tests.unit.loop_fakes import (
    P0,
    P1,
    loop_on_fakes,
    order_record,
    run_until,
    until,
)


async def test_offsets_are_committed_only_after_every_target_purged() -> None:
    order_ids = {P0: [f"o{i}" for i in range(5)], P1: [f"p1-{i}" for i in range(2)]}
    records = {
        tp: [order_record(tp, offset, order_id=order) for offset, order in enumerate(orders)]
        for tp, orders in order_ids.items()
    }
    position_of = {
        f"order:{order}": (tp, offset)
        for tp, orders in order_ids.items()
        for offset, order in enumerate(orders)
    }
    loop, consumer, targets, _ = loop_on_fakes(records)
    targets.failures["b"] = 2  # the first batch takes three attempts, the last on b alone
    await run_until(loop, lambda: consumer.committed() == {P0: 5, P1: 2})
    assert (
        targets.purged["a"]
        == targets.purged["b"]
        == {
            "company:c1:orders",
            "company:c1:order-stats",
            *position_of,
        }
    )
    # At the end of every purge attempt, failed or not, none of its records is committed yet.
    committed_too_early = [
        f"{key} (partition {tp.partition}, offset {offset}): committed up to {committed[tp]}"
        for keys, committed in targets.committed_after_purge
        for key in keys & position_of.keys()
        for tp, offset in [position_of[key]]
        if committed.get(tp, 0) > offset
    ]
    assert len(targets.committed_after_purge) >= 4 and committed_too_early == []
    assert loop.stats.events == 7


async def test_fetching_does_not_wait_for_a_commit_and_one_commit_is_in_flight() -> None:
    records = {P0: [order_record(P0, i) for i in range(9)]}
    loop, consumer, _, _ = loop_on_fakes(records)
    consumer.commit_gate = asyncio.Event()
    running = asyncio.create_task(loop.run())
    deadline = time.monotonic() + 5
    # Three batches of three: all purged while the first commit is still held.
    while loop.stats.events < 9:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.001)
    assert consumer.commits == [] and consumer.commits_in_flight == 1
    assert consumer.fetches_during_commit > 0
    consumer.commit_gate.set()
    loop.stop()
    await asyncio.wait_for(running, timeout=5)
    assert consumer.most_commits_in_flight == 1
    # The held commit carried the first batch; the next one jumped to the highest offsets.
    assert consumer.commits == [{P0: 3}, {P0: 9}]


async def test_fetching_goes_on_during_a_purge_and_what_came_meanwhile_is_purged_as_one() -> None:
    records = {P0: [order_record(P0, i) for i in range(5)]}
    loop, consumer, targets, _ = loop_on_fakes(records)
    consumer.per_fetch = 1
    targets.gate = asyncio.Event()
    running = asyncio.create_task(loop.run())
    # One record a fetch: the first is purged (and hangs), the next three are fetched meanwhile;
    # then fetching waits, since batch_max_records (3) are held.
    await until(lambda: consumer.position[P0] == 4)
    assert len(targets.committed_when_purged) == 1
    targets.gate.set()
    await until(lambda: consumer.committed() == {P0: 5})
    loop.stop()
    await asyncio.wait_for(running, timeout=5)
    assert len(targets.committed_when_purged) == 3, "the three held records: one purge"
    assert {f"order:o{i}" for i in (1, 2, 3)} <= targets.successes[2][1]
    assert loop.stats.batches == 3 and loop.stats.events == 5


async def test_a_failing_target_pauses_retries_and_commits_nothing_until_it_purged() -> None:
    records = {P0: [order_record(P0, i) for i in range(3)]}
    loop, consumer, targets, _ = loop_on_fakes(records)
    targets.failures["b"] = 4
    paused_seen: list[bool] = []
    original = consumer.getmany

    async def watching_getmany(*args: Any, **kwargs: Any) -> dict[TopicPartition, list[Any]]:
        paused_seen.append(P0 in consumer.paused)
        if P0 in consumer.paused:
            assert consumer.commits == [], "committed while the purge was failing"
        return await original(*args, **kwargs)

    consumer.getmany = watching_getmany  # type: ignore[method-assign]
    await run_until(loop, lambda: consumer.committed() == {P0: 3})
    assert any(paused_seen), "partitions were never paused during the retries"
    assert consumer.paused == set(), "partitions stayed paused after the recovery"
    assert loop.stats.purge_retries == 4
    # Target a succeeded once and was not purged again; b was retried until it succeeded.
    assert targets.purged["a"] == targets.purged["b"]


async def test_stop_during_a_retry_abandons_the_batch_but_commits_earlier_ones() -> None:
    records = {P0: [order_record(P0, i) for i in range(6)]}
    loop, consumer, targets, _ = loop_on_fakes(records)
    targets.refused_keys = {"order:o4"}  # the second batch (offsets 3-5) never purges on a
    await run_until(loop, lambda: loop.stats.purge_retries >= 3)
    assert consumer.committed() == {P0: 3}
    assert "order:o4" in targets.purged["b"] and "order:o4" not in targets.purged["a"]


async def test_records_fetched_during_a_retry_wait_behind_the_failing_batch() -> None:
    # P1 is assigned while the loop is paused (the fake returns it: it was not paused yet).
    records = {P0: [order_record(P0, i) for i in range(3)]}
    loop, consumer, targets, _ = loop_on_fakes(records)
    targets.failures["a"] = 3
    late = [order_record(P1, i, company="late") for i in range(2)]
    original_pause = consumer.pause

    def pause_then_assign(*partitions: TopicPartition) -> None:
        original_pause(*partitions)
        if P1 not in consumer.records:
            consumer.records[P1] = late
            consumer.position[P1] = 0

    consumer.pause = pause_then_assign  # type: ignore[method-assign]
    await run_until(loop, lambda: consumer.committed() == {P0: 3, P1: 2})
    on_a = [keys for name, keys in targets.successes if name == "a"]
    first_p0 = next(i for i, keys in enumerate(on_a) if "order:o2" in keys)
    first_p1 = next(i for i, keys in enumerate(on_a) if "company:late:orders" in keys)
    assert first_p0 < first_p1, "a record fetched later was purged before the failing batch"


async def test_rejected_records_reach_the_dead_letter_topic_before_the_commit() -> None:
    unknown = order_record(P0, 2)
    unknown.value = unknown.value.replace(b"OrderStatusChanged", b"Gone")
    records = {P0: [order_record(P0, 0), order_record(P0, 1, value=b"not json"), unknown]}
    loop, consumer, targets, dead = loop_on_fakes(records)
    dead.failures = 2
    await run_until(loop, lambda: consumer.committed() == {P0: 3})
    assert [(r.offset, reason) for r, reason, _ in dead.sent] == [
        (1, "malformed"),
        (2, "unknown_type"),
    ]
    assert loop.stats.dead_lettered == 2 and loop.stats.dead_letter_retries == 2
    assert loop.stats.purge_retries == 0, "a dead-letter send is not a purge"
    assert targets.purged["a"] == {"company:c1:orders", "company:c1:order-stats", "order:o0"}


async def test_revoke_commits_what_was_purged_of_the_revoked_partitions() -> None:
    calls: list[dict[TopicPartition, int]] = []
    gate = asyncio.Event()

    async def commit(offsets: dict[TopicPartition, int]) -> None:
        calls.append(dict(offsets))
        await gate.wait()

    committer = OffsetCommitter(commit, name="test")
    committer.advance({P0: 5, P1: 7})
    await until(lambda: len(calls) == 1)  # in flight, held
    committer.advance({P0: 9, P1: 8})  # pending behind it
    flushing = asyncio.create_task(committer.flush([P1]))
    await asyncio.sleep(0.01)
    assert not flushing.done(), "a flush must wait for the commit in flight"
    gate.set()
    await asyncio.wait_for(flushing, timeout=5)
    assert committer.committed[P1] == 8, "the revoked partition's purged offset is committed"
    assert calls[0] == {P0: 5, P1: 7} and all(call.get(P1, 8) == 8 for call in calls[1:])
    committer.forget([P1])
    await committer.flush()
    assert P1 not in committer.committed and committer.committed[P0] == 9


async def test_a_failed_commit_is_not_retried_blindly_and_rides_on_the_next() -> None:
    calls: list[dict[TopicPartition, int]] = []
    failures = [CommitFailedError("rebalanced")]

    async def commit(offsets: dict[TopicPartition, int]) -> None:
        calls.append(dict(offsets))
        if failures:
            raise failures.pop()

    committer = OffsetCommitter(commit, name="test")
    committer.advance({P0: 5})
    await until(lambda: committer.failures == 1)
    assert calls == [{P0: 5}]
    committer.advance({P1: 2})
    await committer.flush()
    assert calls[1:] == [{P0: 5, P1: 2}] and committer.committed == {P0: 5, P1: 2}
    committer.advance({P0: 4})  # lower than committed: ignored
    await committer.flush()
    assert len(calls) == 2


async def test_commits_wait_out_the_interval_and_a_flush_does_not() -> None:
    calls: list[tuple[float, dict[TopicPartition, int]]] = []

    async def commit(offsets: dict[TopicPartition, int]) -> None:
        calls.append((time.monotonic(), dict(offsets)))

    committer = OffsetCommitter(commit, name="test", interval_s=0.3)
    committer.advance({P0: 1})
    await until(lambda: len(calls) == 1)
    committer.advance({P0: 2})
    committer.advance({P0: 3})
    await until(lambda: len(calls) == 2)
    assert calls[1][1] == {P0: 3}, "the waiting commit carries the newest offset"
    assert calls[1][0] - calls[0][0] >= 0.3
    committer.advance({P0: 4})
    started = time.monotonic()
    await committer.flush()
    assert time.monotonic() - started < 0.2, "a flush does not wait out the interval"
    assert calls[-1][1] == {P0: 4} and committer.committed == {P0: 4}


async def test_a_namespace_redis_refuses_dead_letters_its_events_and_the_rest_is_purged() -> None:
    records = {P0: [order_record(P0, i) for i in range(3)]}
    loop, consumer, targets, dead = loop_on_fakes(records)
    targets.refused_keys = {"order:o1"}
    targets.refusal = ResponseError("WRONGTYPE Operation against a key holding the wrong kind")
    await run_until(loop, lambda: consumer.committed() == {P0: 3})
    assert [(r.offset, reason) for r, reason, _ in dead.sent] == [(1, "purge_refused")]
    assert "a refused the purge of order:o1: WRONGTYPE" in dead.sent[0][2]
    # Every other namespace of the batch was purged on a, one at a time; b purged them all.
    assert targets.purged["a"] == targets.purged["b"] - {"order:o1"}
    assert loop.stats.purge_refused == 1 and loop.stats.dead_lettered == 1
    assert loop.stats.purge_retries == loop.stats.purge_errors == 0


async def test_a_defect_is_not_an_outage_it_is_logged_with_its_traceback_and_retried_slowly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = {P0: [order_record(P0, i) for i in range(2)]}
    loop, consumer, targets, _ = loop_on_fakes(records)
    targets.refused_keys = {"order:o1"}
    targets.refusal = ResponseError("ERR user_script:1: Script attempted to access a key")
    running = asyncio.create_task(loop.run())
    try:
        await until(lambda: loop.stats.purge_errors >= 2)
        assert loop.failure is FailureKind.DEFECT and loop.paused
        assert loop.stats.purge_retries == 0, "a defect was counted as an outage"
        assert consumer.committed() == {}
        tracebacks = [r for r in caplog.records if r.exc_info is not None]
        assert len(tracebacks) == 1, "the traceback is logged once per distinct error"
        targets.refused_keys = set()  # the operator fixed it
        await until(lambda: consumer.committed() == {P0: 2})
        assert loop.failure is None and not loop.paused
    finally:
        loop.stop()
        await asyncio.wait_for(running, timeout=5)


async def test_a_record_whose_decoding_raises_is_dead_lettered_and_the_loop_goes_on() -> None:
    records = {P0: [order_record(P0, i) for i in range(3)]}
    loop, consumer, _, dead = loop_on_fakes(records)
    loop._catalogue = _FaultyCatalogue(decoding_raises_for="o1")  # type: ignore[assignment]
    await run_until(loop, lambda: consumer.committed() == {P0: 3})
    assert [(r.offset, reason) for r, reason, _ in dead.sent] == [(1, "decode_failed")]
    assert "KeyError" in dead.sent[0][2]


class _FaultyCatalogue:
    """The example catalogue whose decoding raises for the record of one order and whose
    planning raises for the event of another (a defect in an upcast, in a purge rule)."""

    def __init__(self, *, decoding_raises_for: str = "", planning_raises_for: str = "") -> None:
        def decode(value: bytes | None, headers: Any = ()) -> Any:
            if decoding_raises_for and value and f'"{decoding_raises_for}"'.encode() in value:
                raise KeyError("a bug in an upcast")
            return CATALOGUE.schemas.decode(value, headers)

        self.schemas = type("Schemas", (), {"decode": staticmethod(decode)})()
        self._planning_raises_for = planning_raises_for

    def purge_keys(self, event: Any) -> Any:
        if getattr(event.payload, "order_id", None) == self._planning_raises_for:
            raise ValueError("a bug in a purge rule")
        return CATALOGUE.purge_keys(event)

    def __getattr__(self, name: str) -> Any:
        return getattr(CATALOGUE, name)


async def test_a_dead_letter_topic_it_may_not_write_is_a_defect_counted_apart_from_purges(
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = {P0: [order_record(P0, 0), order_record(P0, 1, value=b"not json")]}
    loop, consumer, _, dead = loop_on_fakes(records)
    dead.error = TopicAuthorizationFailedError("invalidator.dead-letters")
    dead.failures = 1_000
    running = asyncio.create_task(loop.run())
    try:
        await until(lambda: loop.stats.dead_letter_errors >= 2)
        assert loop.failure is FailureKind.DEFECT and loop.paused
        assert loop.stats.purge_retries == loop.stats.purge_errors == 0, "not a purge failure"
        assert loop.stats.dead_letter_retries == 0, "a defect was counted as an outage"
        assert consumer.committed() == {}
        tracebacks = [r for r in caplog.records if r.exc_info is not None]
        assert len(tracebacks) == 1 and "dead letters" in tracebacks[0].getMessage()
        dead.failures = 0  # the operator granted the permission
        await until(lambda: consumer.committed() == {P0: 2})
        assert loop.failure is None and not loop.paused
        assert [(r.offset, reason) for r, reason, _ in dead.sent] == [(1, "malformed")]
    finally:
        loop.stop()
        await asyncio.wait_for(running, timeout=5)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (TopicAuthorizationFailedError("dead-letters"), FailureKind.DEFECT),
        (ClusterAuthorizationFailedError(), FailureKind.DEFECT),
        (UnknownTopicOrPartitionError(), FailureKind.DEFECT),
        (SaslAuthenticationFailed(), FailureKind.DEFECT),
        (TypeError("a bug"), FailureKind.DEFECT),
        (KafkaConnectionError(), FailureKind.OUTAGE),
        (KafkaTimeoutError(), FailureKind.OUTAGE),
        (NotEnoughReplicasError(), FailureKind.OUTAGE),
        (ConnectionError("broker away"), FailureKind.OUTAGE),
    ],
)
def test_dead_letter_send_failures_are_classified_like_purge_failures(
    error: Exception, kind: FailureKind
) -> None:
    assert dead_letter_failure_kind(error) is kind


async def test_every_dead_letter_reason_is_a_member_of_the_one_reason_enum() -> None:
    records = {
        P0: [order_record(P0, 0, value=b"not json"), order_record(P0, 1), order_record(P0, 2)]
    }
    loop, consumer, _, dead = loop_on_fakes(records)
    loop._catalogue = _FaultyCatalogue(  # type: ignore[assignment]
        decoding_raises_for="o1", planning_raises_for="o2"
    )
    await run_until(loop, lambda: consumer.committed() == {P0: 3})
    reasons = [reason for _, reason, _ in dead.sent]
    assert reasons == [
        RejectReason.MALFORMED,
        RejectReason.DECODE_FAILED,
        RejectReason.UNPLANNABLE,
    ]
    assert all(type(reason) is RejectReason for reason in reasons)
    assert loop.stats.dead_lettered_by_reason == dict.fromkeys(reasons, 1)


async def test_listeners_given_at_construction_get_one_outcome_per_batch_after_the_stats() -> None:
    heard: list[tuple[BatchOutcome, int]] = []

    class Listener:
        def batch_purged(self, outcome: BatchOutcome) -> None:
            heard.append((outcome, loop.stats.batches))

    records = {
        P0: [order_record(P0, 0), order_record(P0, 1, value=b"not json")],
        P1: [order_record(P1, 0)],
    }
    loop, consumer, _, _ = loop_on_fakes(records, listeners=[Listener()])
    await run_until(loop, lambda: consumer.committed() == {P0: 2, P1: 1})
    assert sum(len(outcome.records) for outcome, _ in heard) == 3
    assert [batches for _, batches in heard] == list(range(1, len(heard) + 1)), "stats first"
    handed_over: dict[TopicPartition, int] = {}
    for outcome, _ in heard:
        handed_over.update(outcome.offsets)
    assert handed_over == consumer.committed()
    assert {(r.offset, reason) for o, _ in heard for r, reason, _ in o.rejected} == {
        (1, RejectReason.MALFORMED)
    }
    assert all(o.duration_s >= 0 and o.oldest_age_s >= 0 for o, _ in heard)


def test_loop_tuning_is_read_from_the_settings_and_has_no_defaults_of_its_own() -> None:
    settings = InvalidatorSettings()
    tuning = LoopTuning.from_settings(settings)
    assert tuning == LoopTuning(
        batch_max_records=settings.batch_max_records,
        fetch_timeout_ms=settings.fetch_timeout_ms,
        retry_initial_s=settings.retry_initial_s,
        retry_max_s=settings.retry_max_s,
        commit_interval_s=settings.commit_interval_ms / 1000,
    )
    assert tuning.commit_interval_s == 0.25
    with pytest.raises(TypeError):
        LoopTuning()  # type: ignore[call-arg]
