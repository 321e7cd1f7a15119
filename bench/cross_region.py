"""The cross-region figure: on the mirrored topology, an event published in its home region ->
purged there and purged in the other region, against the limits measured in the same run.

Limits: the link itself (the proxy's configured one-way delay, and Kafka request round trips
through it) and the bare mirror (a bare aiokafka producer, acks=all, linger 0, sends to the home
cluster's orders topic; a bare consumer on the other cluster, assigned at the log end of the
mirrored topic `<home>.orders.events`, stamps each probe). The home cluster's own bare
produce -> consume is recorded beside it. This system: each region's invalidator as a process on
its own cluster (its topics and the other's mirrored ones); the same paced producer sends to the
home cluster; a probe has landed in a region when its generation key was written there, as
Redis reports it (bench/keyspace_watch.py), timed per region. Alongside this system, a bare
consumer process of its own (`bench.arrival_stamps`) reads the mirrored topic in the remote region
again: per probe, read there -> purged there is what the invalidator and Redis add to the mirror
under the same load (the separate bare-mirror phase runs with no invalidator taking CPU). A
second bare consumer process reads it too and purges each event with plain redis-py, SET + WAIT
per master (`bench.bare_purge`), timed by the same kind of keyspace watch: read -> that landing is
what Redis alone adds on this host under this load, the least any purging consumer adds.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.arrival_stamps import is_ready, read_stamps
from bench.bare_purge import PREFIX, bare_key_of_order
from bench.kafka_ping import round_trips_s
from bench.keyspace_watch import KeyspaceWatch
from bench.latency import (
    LatencyParams,
    Probe,
    bare_phase,
    probe_source_id,
    region_latencies,
    system_phase,
)
from bench.link import Link
from bench.machine import percentiles_ms
from bench.processes import BenchProcess, invalidator_process, running
from bench.progress import wait_stable
from bench.stack import MIRROR_VARIABLES, start_mirrored_stack
from contracts import KafkaConnection, topics
from contracts.connections import RedisTarget
from contracts.example_orders import CATALOGUE
from demo.topology import invalidator_environment, mirror_clusters, region_settings
from invalidator.operators import start_at_log_end
from invalidator.settings import InvalidatorSettings

HOME = "eu"
READER_START_TIMEOUT_S = 60.0
"""Where the writes are published."""


@dataclass(frozen=True)
class CrossRegionParams:
    """What the cross-region figure runs."""

    rates: tuple[int, ...] = (200, 1_000)
    seconds: float = 30.0
    settle_timeout_s: float = 120.0
    """How long, after the last send, probes may take to land before they count as late."""
    link_round_trips: int = 50
    bare_purge_rates: tuple[int, ...] = (200,)
    """The rates at which a bare purging consumer runs beside the system. Not at 1,000/s: there a
    naive one (fetch, then SET + WAIT, then fetch) falls seconds behind on 2 cores, and its load
    would slow the system it is a limit for."""


def link_route(routes: list[str]) -> tuple[str, int]:
    """The address the first of the link's routes listens on, from the proxy's status lines
    (`127.0.0.1:23095 -> 127.0.0.1:23094`)."""
    if not routes:
        raise ValueError("the link has no route")
    host, _, port = routes[0].split("->")[0].strip().rpartition(":")
    return host, int(port)


def mirror_goal_ratios(remote: dict[str, float], mirror: dict[str, float]) -> dict[str, Any]:
    """The goals' ratios of the remote region's purge to the bare mirror: p50 as the ms added,
    p99 as the factor.

    remote: the remote purge's percentiles in ms.
    mirror: the bare mirror's percentiles in ms.
    """
    return {
        "p50_added_ms": round(remote["p50"] - mirror["p50"], 2),
        "p99": round(remote["p99"] / mirror["p99"], 2) if mirror["p99"] else None,
    }


def mirror_alongside(
    probes: dict[bytes, Probe],
    arrivals: dict[bytes, float],
    remote: str,
    bare_purged: dict[bytes, float],
) -> dict[str, Any]:
    """The bare mirror read while this system runs, and what the remote purge adds to it.

    probes: the system phase's probes (sent, and landed in each region).
    arrivals: when a bare consumer process on the remote cluster read each probe from the
        mirrored topic, in the same phase (time.monotonic(), `bench.arrival_stamps`).
    remote: the region the probes were mirrored to.
    bare_purged: when that bare consumer's own purge of each probe (`bench.bare_purge`)
        landed in `remote`'s Redis, as Redis reported it.

    `mirror_ms`: sent -> read from the mirrored topic (the limit, under the same load as the
    system: the invalidators' CPU slows MirrorMaker and the brokers too). `added_ms`: per probe,
    read there -> purged in `remote` by this system (what the invalidator and Redis add to the
    mirror). `bare_purge_added_ms`: read there -> the bare consumer's plain SET + WAIT landed
    (what Redis alone adds, on this host under this load; None when no bare purger ran).
    `probes` counts the probes read there and purged there.
    """
    read = [
        (probe, arrivals[key])
        for key, probe in probes.items()
        if key in arrivals and remote in probe.seen_in
    ]
    bare = [
        bare_purged[key] - arrivals[key] for key in probes if key in arrivals.keys() & bare_purged
    ]
    return {
        "probes": len(read),
        "of_probes": len(probes),
        "mirror_ms": percentiles_ms([arrived - probe.sent_at for probe, arrived in read]),
        "added_ms": percentiles_ms([probe.seen_in[remote] - arrived for probe, arrived in read]),
        "bare_purge_added_ms": percentiles_ms(bare) if bare else None,
    }


def arrival_stamps_process(
    kafka: KafkaConnection,
    output: Path,
    *,
    name: str,
    log_dir: Path,
    purge_on: RedisTarget | None = None,
) -> BenchProcess:
    """A bare consumer process stamping arrivals on `kafka`'s copy of HOME's orders topic into
    `output`; with `purge_on` (a Cluster), it also purges each event as a bare consumer would
    (its stamps are then late by its own purges: the plain reader is another process)."""
    purging = []
    if purge_on is not None:
        address = urlsplit(purge_on.url)
        purging = [
            "--purge-cluster", f"{address.hostname}:{address.port}",
            "--replicas", str(purge_on.min_replicas_acked),
        ]  # fmt: skip
    output.unlink(missing_ok=True)  # its first line says when the new process is ready
    return BenchProcess(
        name,
        [
            sys.executable, "-m", "bench.arrival_stamps",
            "--bootstrap-servers", kafka.bootstrap_servers,
            "--topic", topics.mirrored_topic(HOME, topics.ORDERS),
            "--output", str(output),
            *purging,
        ],
        env={},
        log_path=log_dir / f"{name}.log",
    )  # fmt: skip


def bare_purge_watch(target: RedisTarget, *, run_id: str, rate: int) -> KeyspaceWatch:
    """A keyspace watch on the bare purges of the system phase's probes at `rate`."""
    order_prefix = f"{PREFIX}{{order:{probe_source_id(run_id, rate)}-po*"
    return KeyspaceWatch({"bare": target}, key_pattern=order_prefix)


async def _wait_ready(stamps: Path, reader: BenchProcess) -> None:
    deadline = time.monotonic() + READER_START_TIMEOUT_S
    while not is_ready(stamps):
        reader.check_running()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{reader.name} did not start; see {reader.log_path}")
        await asyncio.sleep(0.1)  # polling the reader's first line, with a deadline


async def _stop_reader(reader: BenchProcess) -> None:
    status = await reader.stop()  # it reads on to the log end first
    if status:
        raise RuntimeError(f"{reader.name} exited with {status}; see {reader.log_path}")


async def _mirrored_endpoints() -> tuple[dict[str, str], Link]:
    """Each region's cluster and the link, starting the mirrored topology when not given."""
    if not all(os.environ.get(name) for name in MIRROR_VARIABLES):
        os.environ.update(start_mirrored_stack())
    return mirror_clusters(("eu", "us")), Link.from_env()


async def _link_limits(link: Link, round_trips: int) -> dict[str, Any]:
    status = json.loads(await link.command("status"))
    if status["cut"]:
        raise RuntimeError("the link is cut: heal it (bench/link.py) before the figure")
    host, port = link_route(status["routes"])
    samples = await round_trips_s(host, port, count=round_trips)
    return {
        "delay_ms": status["delay_ms"],
        "jitter_ms": status["jitter_ms"],
        "round_trip_ms": percentiles_ms(samples),
    }


async def _start_invalidators(
    settings: InvalidatorSettings, clusters: dict[str, str], *, prefix: str, log_dir: Path
) -> tuple[dict[str, InvalidatorSettings], list[BenchProcess]]:
    """Each region's invalidator on its own cluster, in a group committed at the log end."""
    regional: dict[str, InvalidatorSettings] = {}
    processes = []
    for region in sorted(clusters):
        own = region_settings(settings, region, clusters).model_copy(
            update={"group_prefix": prefix}
        )
        await start_at_log_end(own.kafka, own.group_id(region), own.event_topics(CATALOGUE))
        regional[region] = own
        processes.append(
            invalidator_process(
                region,
                group_prefix=prefix,
                log_dir=log_dir,
                name=f"invalidator-{region}-mirrored",
                env=invalidator_environment(own),
            )
        )
    return regional, processes


async def run_cross_region(
    settings: InvalidatorSettings, params: CrossRegionParams, *, run_id: str, log_dir: Path
) -> dict[str, Any]:
    """Measure the limits and this system at every rate; the results per rate and the link's.

    settings: the regions' Redis targets (each region's cluster comes from MIRROR_KAFKA_*).
    params: rates and durations.
    run_id: unique to the run.
    log_dir: where the invalidators' logs go.
    """
    clusters, link = await _mirrored_endpoints()
    kafka = {
        r: settings.kafka.model_copy(update={"bootstrap_servers": s}) for r, s in clusters.items()
    }
    remote = next(region for region in sorted(clusters) if region != HOME)
    results: dict[str, Any] = {"home": HOME, "remote": remote}
    results["link"] = await _link_limits(link, params.link_round_trips)
    print(f"[cross_region] link {results['link']}", flush=True)
    for rate in params.rates:
        print(f"[cross_region] bare {HOME} and bare mirror at {rate:,}/s", flush=True)
        home_bare = await bare_phase(
            kafka[HOME],
            f"{run_id}-xh",
            rate,
            seconds=params.seconds,
            settle_timeout_s=params.settle_timeout_s,
        )
        mirror_bare = await bare_phase(
            kafka[HOME],
            f"{run_id}-xm",
            rate,
            seconds=params.seconds,
            settle_timeout_s=params.settle_timeout_s,
            consume_from=kafka[remote],
            consume_topic=topics.mirrored_topic(HOME, topics.ORDERS),
        )
        results[str(rate)] = {"bare_home": home_bare, "bare_mirror": mirror_bare}
        print(f"  home {home_bare['ms']}\n  mirror {mirror_bare['ms']}", flush=True)
    regional, processes = await _start_invalidators(
        settings, clusters, prefix=f"{run_id}-xr", log_dir=log_dir
    )
    async with running(processes):
        for (region, own), process in zip(regional.items(), processes, strict=True):
            await wait_stable(own.kafka, own.group_id(region), [process], members=1)
        for rate in params.rates:
            print(f"[cross_region] this system at {rate:,}/s", flush=True)
            probes: dict[bytes, Probe] = {}
            stamps = log_dir / f"mirror-read-{run_id}-{rate}.txt"
            purger_stamps = log_dir / f"bare-purger-{run_id}-{rate}.txt"
            remote_redis = settings.targets(remote)[0]
            readers = [
                arrival_stamps_process(kafka[remote], stamps, name="mirror-reader",
                                       log_dir=log_dir),
            ]  # fmt: skip
            if rate in params.bare_purge_rates:
                readers.append(
                    arrival_stamps_process(kafka[remote], purger_stamps, name="bare-purger",
                                           log_dir=log_dir, purge_on=remote_redis)
                )  # fmt: skip
            bare_watch = bare_purge_watch(remote_redis, run_id=f"{run_id}-x", rate=rate)
            await bare_watch.start()
            try:
                async with running(readers):
                    await _wait_ready(stamps, readers[0])
                    if len(readers) > 1:
                        await _wait_ready(purger_stamps, readers[1])
                    sending = await system_phase(
                        settings, run_id=f"{run_id}-x", rate=rate,
                        processes=[*processes, *readers],
                        params=LatencyParams(seconds=params.seconds,
                                             settle_timeout_s=params.settle_timeout_s),
                        produce_to=kafka[HOME], probes=probes,
                    )  # fmt: skip
                    for reader in readers:
                        await _stop_reader(reader)
                bare_purged = {
                    key: landed["bare"]
                    for key in probes
                    if "bare" in (landed := bare_watch.landings(bare_key_of_order(key.decode())))
                }
            finally:
                await bare_watch.stop()
            arrivals = read_stamps(stamps)
            figures = results[str(rate)]
            figures["sending"] = {k: sending[k] for k in ("sent", "seconds", "achieved_per_s")}
            for region in sorted(clusters):
                figures[f"purged_{region}"] = region_latencies(probes, region)
                print(f"  purged in {region} {figures[f'purged_{region}']}", flush=True)
            figures["ratios"] = mirror_goal_ratios(
                figures[f"purged_{remote}"]["ms"], figures["bare_mirror"]["ms"]
            )
            figures["alongside"] = mirror_alongside(probes, arrivals, remote, bare_purged)
            print(f"  mirror read alongside {figures['alongside']}", flush=True)
        results["peak_rss_mb"] = {p.name: p.sample_rss() for p in processes}
    return results
