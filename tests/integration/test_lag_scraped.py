"""The lag as a real Prometheus scrapes it (Debian's `prometheus`, every second): the
invalidator's own gauge counts what piles up while its Redis is frozen and its partitions are
paused, and `invalidator offsets export` reports the group's lag while no invalidator runs."""

from __future__ import annotations

from pathlib import Path

from contracts.example_orders import CATALOGUE
from invalidator import Invalidator, InvalidatorSettings
from invalidator.operators import group_lag
from producers import EventPublisher
from tests.faults.services import REDIS_EU, service_process
from tests.integration.cli import spawn_cli
from tests.integration.invalidators import failing_fast, running_invalidators
from tests.integration.kafka_tools import caught_up
from tests.integration.orders import publish_orders
from tests.integration.prometheus import PrometheusApi, free_port, running_prometheus
from tests.waiting import wait_until

BEHIND = 60
"""Events published behind the lagging group."""
PartitionKey = tuple[str, str]
"""(topic, partition), as Prometheus labels them."""


async def broker_lag(settings: InvalidatorSettings, group: str) -> dict[PartitionKey, float]:
    """Log end less committed offset per partition, read from the broker now."""
    lag = await group_lag(settings.kafka, group, CATALOGUE.topics())
    return {(tp.topic, str(tp.partition)): float(p.lag) for tp, p in lag.items()}


def scrape_target(invalidator: Invalidator) -> str:
    """host:port of the invalidator's /metrics."""
    assert invalidator.metrics_address is not None, "the invalidator serves no metrics"
    host, port = invalidator.metrics_address
    return f"{host}:{port}"


async def scraped(prometheus: PrometheusApi, job: str) -> bool:
    """Whether Prometheus's last scrape of `job` succeeded."""
    return await prometheus.value(f'up{{job="{job}"}}') == 1


async def scraped_lag_is_the_brokers(
    prometheus: PrometheusApi, metric: str, settings: InvalidatorSettings, group: str
) -> bool:
    """Whether `metric`'s per-partition values, as Prometheus scraped them, are the broker's lag
    of `group`, with at least BEHIND records behind in all."""
    scraped_lag = await prometheus.series(f'{metric}{{group="{group}"}}', "topic", "partition")
    broker = await broker_lag(settings, group)
    return scraped_lag == broker and sum(broker.values()) >= BEHIND


async def until_scraped_lag_is_the_brokers(
    prometheus: PrometheusApi, gauges: str, settings: InvalidatorSettings, group: str
) -> None:
    """Wait until the `gauges`_records Prometheus scraped are the broker's lag of `group` on
    every partition; then `gauges`_seconds must be above 0 on exactly the partitions behind."""
    await wait_until(
        lambda: scraped_lag_is_the_brokers(prometheus, f"{gauges}_records", settings, group),
        within=30,
        what=f"the scraped {gauges}_records of each partition to be the broker's",
        interval=0.5,
    )
    behind = {key for key, lag in (await broker_lag(settings, group)).items() if lag}
    seconds = await prometheus.series(
        f'{gauges}_seconds{{group="{group}"}} > 0', "topic", "partition"
    )
    assert set(seconds) == behind


async def test_the_invalidators_lag_gauge_rises_while_its_redis_is_frozen(
    settings: InvalidatorSettings, publisher: EventPublisher, tmp_path: Path
) -> None:
    settings = failing_fast(settings, "eu").model_copy(update={"metrics_port": 0})
    group = settings.group_id("eu")
    redis_eu = service_process(REDIS_EU)
    async with running_invalidators(settings, CATALOGUE, regions=("eu",)) as invalidators:
        jobs = {"invalidator": [scrape_target(invalidators["eu"])]}
        async with running_prometheus(jobs, tmp_path / "prometheus") as prometheus:
            await wait_until(lambda: scraped(prometheus, "invalidator"), within=30, what="a scrape")
            async with redis_eu.frozen():
                # One event to purge, which cannot be: the partitions pause behind it.
                await publish_orders(publisher, 1)

                async def paused() -> bool:
                    return await prometheus.value(f'invalidator_paused{{group="{group}"}}') == 1

                await wait_until(paused, within=30, what="the scraped paused gauge to read 1")
                await publish_orders(publisher, BEHIND)
                await until_scraped_lag_is_the_brokers(
                    prometheus, "invalidator_lag", settings, group
                )


async def test_the_exporter_reports_the_lag_while_the_invalidator_is_stopped(
    settings: InvalidatorSettings, publisher: EventPublisher, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"metrics_port": 0})
    group = settings.group_id("eu")
    exporter_port = free_port()
    exporter = spawn_cli(
        *("offsets", "export", "--region", "eu", "--port", str(exporter_port), "--interval", "1"),
        env={"INVALIDATOR_GROUP_PREFIX": settings.group_prefix},
        output=tmp_path / "exporter.log",
    )
    try:
        async with running_invalidators(settings, CATALOGUE, regions=("eu",)) as invalidators:
            invalidator_target = scrape_target(invalidators["eu"])
            await publish_orders(publisher, 5)
            await wait_until(
                lambda: caught_up(settings.kafka, group, CATALOGUE.topics()),
                within=60,
                what="the invalidator to purge and commit the first events",
            )
        # The invalidator has stopped: only the exporter can tell the lag now.
        jobs = {
            "invalidator": [invalidator_target],
            "invalidator-offsets": [f"127.0.0.1:{exporter_port}"],
        }
        async with running_prometheus(jobs, tmp_path / "prometheus") as prometheus:
            await wait_until(
                lambda: scraped(prometheus, "invalidator-offsets"),
                within=60,
                what=f"a scrape of the exporter ({tmp_path / 'exporter.log'})",
            )
            await publish_orders(publisher, BEHIND)
            await until_scraped_lag_is_the_brokers(
                prometheus, "invalidator_group_lag", settings, group
            )
            assert sum((await broker_lag(settings, group)).values()) == BEHIND
            assert await prometheus.value('up{job="invalidator"}') == 0
    finally:
        exporter.terminate()
        exit_code = exporter.wait(timeout=30)
    # Not in `finally`: a failure above must not be hidden behind the exporter's exit.
    assert exit_code == 0, (tmp_path / "exporter.log").read_text()[-3000:]
