"""The tls figure: what TLS costs on the hot path, the plaintext stack against the secure
profile (`stack.sh up --secure`, started when not given), in one run.

Secure: Kafka over SASL_SSL (SCRAM-SHA-512, ACLs), both regions' Redis over TLS with ACL users
(us: a Cluster whose masters replicate over TLS). The invalidator logs in as `invalidator` to
both, the bare consumer as `invalidator` too (same transport, same principal), events are
published as `publisher`. The bench's own look-ups in Redis (keyspace notifications, lost
purges) log in as the profile's `admin`: they measure, they are not measured.

Drain: in each round, for each transport (the order alternating round by round), a set of N Zipf
events of its own is produced, then drained by the bare aiokafka group on that transport (the
limit) and by each region's `invalidator run`, one after the other, timed as the drain figure
times them. Every purge of the set must be in every drained region's Redis afterwards.
E2E: both transports' invalidators (every region) run throughout; in each round, for each
transport (alternating), the latency figure's paced producer sends at `rate` for `seconds`; a
probe is purged when its generation key was written in every region (keyspace notifications).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.drain import bare_process, drain_figures, produce_for_groups, timed_drain
from bench.latency import LatencyParams, Probe, system_phase
from bench.lost_purges import lost_purges
from bench.machine import percentiles_ms
from bench.orders_load import CompanyPicker, generation_keys, order_records
from bench.processes import BenchProcess, invalidator_process, running
from bench.progress import Drained, wait_stable
from bench.secure_stack import SecureProfile
from contracts import KafkaConnection
from contracts.example_orders import CATALOGUE
from invalidator.operators import start_at_log_end
from invalidator.settings import InvalidatorSettings

TRANSPORTS = ("plaintext", "secure")
BARE = "bare"
GROUP_ROOT = "invalidator."
"""Every group of the figure starts so: the secure profile lets `invalidator` join no other."""


@dataclass(frozen=True)
class TlsParams:
    """What the tls figure runs."""

    drain_events: int = 100_000
    """Per drained set (every round and transport has a set of its own, this size)."""
    drain_rounds: int = 3
    regions: tuple[str, ...] = ("eu", "us")
    """The regions whose invalidator drains each set."""
    bare: bool = True
    """Whether the bare consumer on the same transport drains each set too (the limit)."""
    rate: int = 1_000
    """The e2e phases' events per second."""
    seconds: float = 10.0
    """Per e2e phase."""
    e2e_rounds: int = 3
    settle_timeout_s: float = 60.0
    """How long, after an e2e phase's last send, its probes may take to land."""


@dataclass(frozen=True)
class Transport:
    """One side of the figure: how each of its clients reaches Kafka and Redis."""

    name: str
    kafka: KafkaConnection
    """The invalidator's login; the bench's too, for its groups' offsets."""
    publisher: KafkaConnection
    """What the events are produced with."""
    observer: InvalidatorSettings
    """The bench's look-ups: every region's Redis, with a login that may watch and read."""
    invalidator_env: dict[str, str]
    """The invalidator processes' variables over the bench's environment."""


def plaintext_transport(settings: InvalidatorSettings) -> Transport:
    """The plaintext stack, every client as the bench's settings say."""
    return Transport("plaintext", settings.kafka, settings.kafka, settings, {})


def secure_transport(settings: InvalidatorSettings, profile: SecureProfile) -> Transport:
    """The secure profile: the invalidator as `invalidator`, events as `publisher`, the bench's
    look-ups in Redis as `admin`.

    settings: the bench's settings (what the secure profile does not replace).
    profile: the secure profile's logins.
    """
    observer = settings.model_copy(
        update={"kafka": profile.invalidator_kafka, "regions": profile.regions_as("admin")}
    )
    return Transport(
        "secure",
        kafka=profile.invalidator_kafka,
        publisher=profile.publisher_kafka,
        observer=observer,
        invalidator_env=profile.invalidator_environment(),
    )


@dataclass(frozen=True)
class DrainedSet:
    """One set drained on one transport."""

    round: int
    transport: str
    drains: dict[str, Drained]
    """By consumer: `bare`, `invalidator-<region>`."""
    lost_purges: dict[str, int]
    """By region: the set's generation keys missing after the drains (must be 0)."""


async def _drain_set(
    transport: Transport, params: TlsParams, round_: int, *, prefix: str, log_dir: Path
) -> DrainedSet:
    """Produce a set on the transport, drain it with each consumer, count its lost purges."""
    records = order_records(
        CompanyPicker("zipf", run_id=prefix), params.drain_events, run_id=prefix, tag="t"
    )
    bare_group = f"{prefix}-bare"
    groups = [f"{prefix}.{region}" for region in params.regions]
    starts, ends = await produce_for_groups(
        transport.kafka,
        records,
        [*groups, bare_group] if params.bare else groups,
        publisher=transport.publisher,
    )
    drains: dict[str, Drained] = {}
    if params.bare:
        process = bare_process(
            transport.kafka, bare_group, log_dir, name=f"bare-aiokafka-{transport.name}"
        )
        drains[BARE] = await timed_drain(
            transport.kafka, [process], bare_group, starts=starts, ends=ends
        )
    for region, group in zip(params.regions, groups, strict=True):
        process = invalidator_process(
            region,
            group_prefix=prefix,
            log_dir=log_dir,
            name=f"invalidator-{region}-{transport.name}",
            env=transport.invalidator_env,
        )
        drains[f"invalidator-{region}"] = await timed_drain(
            transport.kafka, [process], group, starts=starts, ends=ends
        )
    keys = generation_keys(records)
    lost = {
        region: await lost_purges(transport.observer.targets(region)[0], keys)
        for region in params.regions
    }
    print(f"  {transport.name}: lost purges {lost}", flush=True)
    return DrainedSet(round_, transport.name, drains, lost)


def _alternating(transports: Sequence[Transport], round_: int) -> list[Transport]:
    """The transports in their order on even rounds, reversed on odd ones."""
    return list(transports if round_ % 2 == 0 else transports[::-1])


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 3) if denominator else None


def drain_summary(sets: list[DrainedSet]) -> dict[str, Any]:
    """The drain half's results: each transport's consumers' rates (per round and median), the
    secure-to-plaintext ratio of each consumer (the median of the rounds' ratios: a round's
    two drains ran minutes apart at most), each transport's invalidators against its bare
    consumer (likewise), the purges lost per transport."""
    by_round = {(s.round, s.transport): s for s in sets}
    rounds = sorted({s.round for s in sets})
    consumers = list(sets[0].drains) if sets else []
    rates = {
        transport: {
            consumer: [
                round(by_round[r, transport].drains[consumer].events_per_s, 1) for r in rounds
            ]
            for consumer in consumers
        }
        for transport in TRANSPORTS
    }

    def median_ratio(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return round(statistics.median(known), 3) if known else None

    secure_to_plaintext = {
        consumer: median_ratio(
            [
                _ratio(rates["secure"][consumer][i], rates["plaintext"][consumer][i])
                for i in range(len(rounds))
            ]
        )
        for consumer in consumers
    }
    to_bare = {
        transport: {
            consumer: median_ratio(
                [
                    _ratio(rates[transport][consumer][i], rates[transport][BARE][i])
                    for i in range(len(rounds))
                ]
            )
            for consumer in consumers
            if consumer != BARE
        }
        for transport in TRANSPORTS
        if BARE in consumers
    }
    return {
        "events_per_s": {
            transport: {
                consumer: {"runs": runs, "median": round(statistics.median(runs), 1)}
                for consumer, runs in by_consumer.items()
            }
            for transport, by_consumer in rates.items()
        },
        "secure_to_plaintext": secure_to_plaintext,
        "to_bare": to_bare,
        "rounds": [
            {
                "round": s.round,
                "transport": s.transport,
                "drains": {
                    consumer: drain_figures(
                        drained, limit=None if consumer == BARE else s.drains.get(BARE)
                    )
                    for consumer, drained in s.drains.items()
                },
                "lost_purges": s.lost_purges,
            }
            for s in sets
        ],
        "lost_purges": {
            transport: sum(sum(s.lost_purges.values()) for s in sets if s.transport == transport)
            for transport in TRANSPORTS
        },
    }


def latency_summary(probes: dict[bytes, Probe]) -> dict[str, Any]:
    """The probes' send -> purged-everywhere latencies, and how many never landed."""
    seen = [p.seen_at - p.sent_at for p in probes.values() if p.seen_at is not None]
    return {"probes": len(probes), "late": len(probes) - len(seen), "ms": percentiles_ms(seen)}


def e2e_summary(
    pooled: dict[str, dict[bytes, Probe]], phases: list[dict[str, Any]], *, rate: int
) -> dict[str, Any]:
    """The e2e half's results: per transport, the latencies of every round's probes together;
    secure to plaintext (p50 and p99 ratios, the p50's added milliseconds); each phase's own.

    pooled: every probe of the half, by transport.
    phases: each phase's `system_phase` summary with its `round` and `transport`.
    rate: the phases' events per second.
    """
    by_transport = {transport: latency_summary(pooled[transport]) for transport in TRANSPORTS}
    for transport, figures in by_transport.items():
        figures["achieved_per_s"] = [
            phase["achieved_per_s"] for phase in phases if phase["transport"] == transport
        ]
    secure, plaintext = by_transport["secure"]["ms"], by_transport["plaintext"]["ms"]
    return {
        "rate": rate,
        **by_transport,
        "secure_to_plaintext": {q: _ratio(secure[q], plaintext[q]) for q in ("p50", "p99")},
        "p50_added_ms": round(secure["p50"] - plaintext["p50"], 3),
        "phases": phases,
    }


async def _e2e(
    transports: Sequence[Transport], params: TlsParams, *, run_id: str, log_dir: Path
) -> dict[str, Any]:
    """Both transports' invalidators running, paced phases alternating between them."""
    processes: dict[str, list[BenchProcess]] = {}
    groups: dict[str, list[str]] = {}
    for transport in transports:
        prefix = f"{GROUP_ROOT}{run_id}-tls-e2e-{transport.name}"
        regions = sorted(transport.observer.regions)
        groups[transport.name] = [f"{prefix}.{region}" for region in regions]
        for group in groups[transport.name]:
            await start_at_log_end(transport.kafka, group, CATALOGUE.topics())
        processes[transport.name] = [
            invalidator_process(
                region,
                group_prefix=prefix,
                log_dir=log_dir,
                name=f"invalidator-{region}-{transport.name}-e2e",
                env=transport.invalidator_env,
            )
            for region in regions
        ]
    latency = LatencyParams(
        rates=(params.rate,), seconds=params.seconds, settle_timeout_s=params.settle_timeout_s
    )
    pooled: dict[str, dict[bytes, Probe]] = {transport.name: {} for transport in transports}
    phases: list[dict[str, Any]] = []
    everything = [process for group in processes.values() for process in group]
    async with running(everything):
        for transport in transports:
            for group, process in zip(
                groups[transport.name], processes[transport.name], strict=True
            ):
                await wait_stable(transport.kafka, group, [process], members=1)
        for round_ in range(params.e2e_rounds):
            for transport in _alternating(transports, round_):
                print(
                    f"[tls] e2e {transport.name} at {params.rate:,}/s for {params.seconds:.0f} s",
                    flush=True,
                )
                probes: dict[bytes, Probe] = {}
                phase = await system_phase(
                    transport.observer,
                    run_id=f"{run_id}-tls{round_}{transport.name}",
                    rate=params.rate,
                    params=latency,
                    processes=processes[transport.name],
                    produce_to=transport.publisher,
                    probes=probes,
                )
                pooled[transport.name].update(probes)
                phases.append({"round": round_, "transport": transport.name, **phase})
                print(f"  {phase}", flush=True)
        rss = {process.name: process.sample_rss() for process in everything}
    return {**e2e_summary(pooled, phases, rate=params.rate), "peak_rss_mb": rss}


async def run_tls(
    settings: InvalidatorSettings,
    params: TlsParams,
    profile: SecureProfile,
    *,
    run_id: str,
    log_dir: Path,
) -> dict[str, Any]:
    """Measure the drain and e2e halves on both transports, alternating; the results.

    settings: the plaintext stack's endpoints.
    params: sizes, rounds and the e2e rate.
    profile: the secure profile's logins.
    run_id: unique to the run (ids and group names).
    log_dir: where the processes' logs go.
    """
    transports = [plaintext_transport(settings), secure_transport(settings, profile)]
    print(
        f"[tls] {params.drain_rounds} x 2 drains of {params.drain_events:,} events "
        f"({', '.join(params.regions)}{', bare' if params.bare else ''})",
        flush=True,
    )
    sets = []
    for round_ in range(params.drain_rounds):
        for transport in _alternating(transports, round_):
            prefix = f"{GROUP_ROOT}{run_id}-tls-d{round_}-{transport.name}"
            print(f"[tls] drain round {round_ + 1} {transport.name}", flush=True)
            sets.append(await _drain_set(transport, params, round_, prefix=prefix, log_dir=log_dir))
    e2e = await _e2e(transports, params, run_id=run_id, log_dir=log_dir)
    peak_rss = e2e.pop("peak_rss_mb")
    return {"drain": drain_summary(sets), "e2e": e2e, "peak_rss_mb": peak_rss}
