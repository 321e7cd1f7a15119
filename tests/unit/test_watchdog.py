"""The watchdog's pure parts: which events it samples, when a generation token was made, how a
look at `{N}:gen` is judged, an event's outcome from its purges', the one-shot summary, and
settings it refuses."""

from __future__ import annotations

import itertools
import time
import uuid

import pytest

from contracts import RedisTarget
from contracts.events import HEADER_EVENT_ID, EventEnvelope
from contracts.example_orders import CATALOGUE, EXAMPLE_CATALOGUE, OrderCreated
from contracts.layout import generation_time_ns, new_generation
from invalidator.cli import main
from invalidator.operators import EXIT_INPUT
from invalidator.settings import WatchSettings
from invalidator.watchdog import (
    WITHIN_S,
    EventResult,
    Judgement,
    Look,
    Outcome,
    PurgeResult,
    Watchdog,
    WatchReport,
    event_judgement,
    is_sampled,
    judge,
    threshold_name,
)

EVENT_MS = 1_800_000_000_000.0
DEADLINE_MS = 10_000.0


def _token(at_ms: float) -> bytes:
    """A token as `new_generation` makes it, at `at_ms`."""
    return f"{int(at_ms * 1_000_000):016x}{'ab' * 8}".encode()


def test_every_event_is_sampled_at_one_in_one() -> None:
    assert all(is_sampled(str(uuid.uuid4()), 1) for _ in range(1000))


def test_one_in_n_samples_about_a_tenth_and_always_the_same_events() -> None:
    ids = [str(uuid.uuid4()) for _ in range(20_000)]
    chosen = [event_id for event_id in ids if is_sampled(event_id, 10)]
    assert 0.08 < len(chosen) / len(ids) < 0.12
    assert chosen == [event_id for event_id in ids if is_sampled(event_id, 10)]


def test_a_token_tells_when_it_was_made() -> None:
    before = time.time_ns()
    made = generation_time_ns(new_generation())
    assert made is not None and before <= made <= time.time_ns()


@pytest.mark.parametrize("foreign", [b"", b"7", b"not a token at all!", b"0123456789abcdef"])
def test_a_value_not_made_by_new_generation_has_no_time(foreign: bytes) -> None:
    assert generation_time_ns(foreign) is None


def _judge(reading: bytes | Look, *, read_before: bool, final: bool) -> Judgement | None:
    return judge(
        reading,
        event_ms=EVENT_MS,
        read_before=read_before,
        deadline_ms=DEADLINE_MS,
        final=final,
    )


def test_a_token_made_after_the_event_within_the_deadline_is_seen_with_its_lag() -> None:
    judged = _judge(_token(EVENT_MS + 3), read_before=True, final=False)
    assert judged is not None and judged.outcome is Outcome.SEEN
    assert judged.lag_ms == pytest.approx(3, abs=0.001) and not judged.lag_bound


def test_a_token_made_after_the_deadline_is_late_not_missing() -> None:
    judged = _judge(_token(EVENT_MS + 12_000), read_before=True, final=True)
    assert judged is not None and judged.outcome is Outcome.LATE
    assert judged.lag_ms == pytest.approx(12_000, abs=0.001) and not judged.lag_bound


def test_without_an_earlier_read_a_newer_token_is_seen_and_its_lag_is_a_bound() -> None:
    # It may be a later purge's token: the first purge cannot be told late.
    judged = _judge(_token(EVENT_MS + 60_000), read_before=False, final=True)
    assert judged is not None and judged.outcome is Outcome.SEEN and judged.lag_bound


@pytest.mark.parametrize(
    "reading", [_token(EVENT_MS - 1), Look.ABSENT, Look.UNREACHABLE, b"legacy"], ids=str
)
def test_without_a_newer_token_nothing_is_concluded_before_the_end(reading: bytes | Look) -> None:
    assert _judge(reading, read_before=True, final=False) is None


@pytest.mark.parametrize(
    ("reading", "outcome"),
    [
        pytest.param(_token(EVENT_MS - 1), Outcome.MISSING, id="older-token"),
        pytest.param(Look.ABSENT, Outcome.EXPIRED, id="absent-key"),
        pytest.param(b"legacy", Outcome.EXPIRED, id="not-a-token"),
        pytest.param(Look.UNREACHABLE, Outcome.UNKNOWN, id="unreachable"),
    ],
)
def test_at_the_end_only_an_older_token_is_missing(reading: bytes | Look, outcome: Outcome) -> None:
    assert _judge(reading, read_before=True, final=True) == Judgement(outcome)


def test_only_seen_late_and_missing_are_judged() -> None:
    assert [o for o in Outcome if o.judged] == [Outcome.SEEN, Outcome.LATE, Outcome.MISSING]
    assert all(o.description for o in Outcome)


@pytest.mark.parametrize(
    ("purges", "expected"),
    [
        pytest.param(
            [Judgement(Outcome.SEEN, 2.0), Judgement(Outcome.SEEN, 5.0)],
            Judgement(Outcome.SEEN, 5.0),
            id="slowest-lag",
        ),
        pytest.param(
            [Judgement(Outcome.SEEN, 2.0), Judgement(Outcome.MISSING)],
            Judgement(Outcome.MISSING),
            id="missing-wins",
        ),
        pytest.param(
            [Judgement(Outcome.LATE, 11_000.0), Judgement(Outcome.SEEN, 1.0, lag_bound=True)],
            Judgement(Outcome.LATE, 11_000.0, lag_bound=True),
            id="late-over-seen",
        ),
        pytest.param(
            [Judgement(Outcome.SEEN, 2.0), Judgement(Outcome.UNKNOWN)],
            Judgement(Outcome.SEEN, 2.0),
            id="judged-over-unknown",
        ),
        pytest.param(
            [Judgement(Outcome.EXPIRED), Judgement(Outcome.UNKNOWN)],
            Judgement(Outcome.UNKNOWN),
            id="unknown-over-expired",
        ),
        pytest.param([Judgement(Outcome.EXPIRED)], Judgement(Outcome.EXPIRED), id="expired"),
    ],
)
def test_an_event_takes_its_worst_judged_purge(
    purges: list[Judgement], expected: Judgement
) -> None:
    assert event_judgement(purges) == expected


def test_an_event_without_purges_has_no_outcome() -> None:
    with pytest.raises(ValueError, match="at least one"):
        event_judgement([])


def _result(event_id: str, judgement: Judgement, region: str = "eu") -> EventResult:
    purge = PurgeResult("order", f"order:{event_id}", f"{region}-main", judgement)
    return EventResult(event_id, "orders.OrderCreated", 0, region, judgement, (purge,))


def test_the_report_counts_the_nines_over_judged_events_only() -> None:
    report = WatchReport()
    for i, lag in enumerate([5.0, 50.0, 500.0, 5000.0]):
        report.event_checked(_result(f"e{i}", Judgement(Outcome.SEEN, lag)))
    report.event_checked(_result("late", Judgement(Outcome.LATE, 12_000.0)))
    report.event_checked(_result("lost", Judgement(Outcome.MISSING)))
    report.event_checked(_result("gone", Judgement(Outcome.EXPIRED)))
    report.event_checked(_result("dark", Judgement(Outcome.UNKNOWN), region="us"))
    eu, us = report.regions()["eu"], report.regions()["us"]
    assert eu["seen_within"] == {"10ms": 1 / 6, "100ms": 2 / 6, "1s": 3 / 6, "10s": 4 / 6}
    assert eu["events"]["expired_not_judged"] == 1
    assert eu["not_seen"] == [
        {
            "event_id": "lost",
            "event_type": "orders.OrderCreated",
            "namespace": "order",
            "key": "order:lost",
            "region": "eu",
            "target": "eu-main",
        }
    ]
    assert [late["event_id"] for late in eu["late"]] == ["late"]
    assert us["seen_within"] == dict.fromkeys(map(threshold_name, WITHIN_S))
    assert (report.missing(), report.unknown()) == (1, 1)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("INVALIDATOR_WATCH__SAMPLE_EVERY", "0", "INVALIDATOR_WATCH__SAMPLE_EVERY"),
        ("INVALIDATOR_WATCH__DEADLINE_S", "soon", "INVALIDATOR_WATCH__DEADLINE_S"),
        ("INVALIDATOR_WATCH__GROUP", "invalidator.eu", "named like an invalidator's group"),
    ],
)
def test_bad_watchdog_settings_exit_2_with_a_message_naming_them(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    expected: str,
) -> None:
    monkeypatch.setenv("INVALIDATOR_REGIONS", '{"eu": [{"name": "eu", "url": "redis://h:1/0"}]}')
    monkeypatch.setenv("INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("INVALIDATOR_CATALOGUE", EXAMPLE_CATALOGUE)
    monkeypatch.setenv(variable, value)
    status = main(["watch", "--since", "10m"])
    err = capsys.readouterr().err
    assert status == EXIT_INPUT, err
    assert expected in err and "Traceback" not in err


def test_json_without_since_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INVALIDATOR_REGIONS", '{"eu": [{"name": "eu", "url": "redis://h:1/0"}]}')
    monkeypatch.setenv("INVALIDATOR_CATALOGUE", EXAMPLE_CATALOGUE)
    assert main(["watch", "--json"]) == EXIT_INPUT
    assert "give --since too" in capsys.readouterr().err


def test_no_region_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INVALIDATOR_REGIONS", "{}")
    monkeypatch.setenv("INVALIDATOR_CATALOGUE", EXAMPLE_CATALOGUE)
    assert main(["watch", "--since", "10m"]) == EXIT_INPUT
    assert "names no region" in capsys.readouterr().err


class _Record:
    """A Kafka record as the watchdog reads it."""

    def __init__(
        self,
        value: bytes | None,
        timestamp: int = 0,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self.value = value
        self.headers = headers or []
        self.timestamp = timestamp


def _order_record(event_id: uuid.UUID) -> _Record:
    order = OrderCreated(order_id="o-1", company_id="c-1", total_cents=1)
    envelope = EventEnvelope.wrap(
        order, source="test", tenant="acme", aggregate_version=1, event_id=event_id
    )
    headers = [(name, value.encode()) for name, value in envelope.headers().items()]
    return _Record(envelope.model_dump_json().encode(), headers=headers)


def _watchdog(report: WatchReport, *, sample_every: int = 1) -> Watchdog:
    # Its clients connect on first use: observe() does no I/O.
    regions = {"eu": [RedisTarget(name="eu-main", url="redis://127.0.0.1:1/0")]}
    return Watchdog(
        CATALOGUE, regions, WatchSettings(sample_every=sample_every), listeners=[report]
    )


def test_an_undecodable_record_is_counted_and_skipped() -> None:
    report = WatchReport()
    watchdog = _watchdog(report)
    watchdog.observe(_Record(b"not json"))
    watchdog.observe(_Record(None))
    assert (report.records, report.sampled, watchdog.pending) == (2, 0, 0)
    assert report.skipped == {"malformed": 2}


def test_a_sampled_event_is_looked_for_and_one_left_out_is_not() -> None:
    ids = [uuid.uuid4() for _ in range(200)]
    chosen = next(i for i in ids if is_sampled(str(i), 10))
    left_out = next(i for i in ids if not is_sampled(str(i), 10))
    report = WatchReport()
    watchdog = _watchdog(report, sample_every=10)
    watchdog.observe(_order_record(chosen))
    watchdog.observe(_order_record(left_out))
    assert (report.records, report.sampled, report.skipped, watchdog.pending) == (2, 1, {}, 1)


def test_a_record_whose_event_id_header_is_not_sampled_is_not_decoded() -> None:
    ids = [uuid.uuid4() for _ in range(200)]
    chosen = next(str(i) for i in ids if is_sampled(str(i), 10))
    left_out = next(str(i) for i in ids if not is_sampled(str(i), 10))
    report = WatchReport()
    watchdog = _watchdog(report, sample_every=10)
    # The same undecodable value: left out by its header, it is read and never decoded.
    watchdog.observe(_Record(b"not json", headers=[(HEADER_EVENT_ID, left_out.encode())]))
    assert (report.records, report.sampled, report.skipped) == (1, 0, {})
    watchdog.observe(_Record(b"not json", headers=[(HEADER_EVENT_ID, chosen.encode())]))
    assert (report.records, report.sampled, report.skipped) == (2, 0, {"malformed": 1})


async def test_a_purge_not_seen_is_looked_for_less_and_less_often_until_its_last_look(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now_s = [EVENT_MS / 1000]
    report = WatchReport()
    regions = {"eu": [RedisTarget(name="eu-main", url="redis://127.0.0.1:1/0")]}
    settings = WatchSettings(interval_ms=20, deadline_s=1.0, grace_s=1.0)
    watchdog = Watchdog(CATALOGUE, regions, settings, listeners=[report], clock=lambda: now_s[0])
    reads_ms: list[float] = []

    async def absent(place: tuple[str, str], keys: list[str]) -> list[Look]:
        reads_ms.append(now_s[0] * 1000 - EVENT_MS)
        return [Look.ABSENT] * len(keys)

    monkeypatch.setattr(watchdog, "_read", absent)
    record = _order_record(uuid.uuid4())
    record.timestamp = int(EVENT_MS)
    watchdog.observe(record)
    for step_ms in range(0, 2_100, 5):  # a look every 5 ms for 2.1 s
        now_s[0] = (EVENT_MS + step_ms) / 1000
        await watchdog.look()
    gaps = [later - earlier for earlier, later in itertools.pairwise(reads_ms)]
    for gap, doubled in zip(gaps, (20, 40, 80, 160, 320, 640), strict=False):
        assert doubled - 1 <= gap <= doubled + 6, gaps
    assert len(reads_ms) == 8, reads_ms  # not 420: the last one at the end of the grace
    assert 2_000 <= reads_ms[-1] <= 2_006
    assert watchdog.pending == 0
    assert report.regions()["eu"]["events"]["expired_not_judged"] == 1
