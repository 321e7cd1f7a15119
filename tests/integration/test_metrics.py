"""/metrics, /healthz and /readyz scraped from running invalidators while events flow."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from contracts.example_orders import CATALOGUE
from invalidator import Invalidator, InvalidatorSettings
from invalidator.operators import start_at_log_end
from producers import EventPublisher
from tests.faults.proxy import region_through_proxy
from tests.integration.endpoints import Samples, http_get, scrape, total
from tests.integration.invalidators import running_invalidators
from tests.integration.orders import publish_orders
from tests.waiting import wait_until


async def probe(invalidator: Invalidator, path: str) -> tuple[int, dict[str, Any]]:
    """A probe's status and JSON body."""
    status, body = await http_get(invalidator.metrics_address, path)
    return status, json.loads(body)


async def test_metrics_move_while_events_flow(
    settings: InvalidatorSettings, publisher: EventPublisher
) -> None:
    settings = settings.model_copy(update={"metrics_port": 0})
    async with running_invalidators(settings, CATALOGUE) as invalidators:
        eu = invalidators["eu"]
        assert await probe(eu, "/healthz") == (200, {"ok": True, "reason": "the loop is running"})
        await publish_orders(publisher, 30)

        async def all_consumed() -> bool:
            scraped = [await scrape(invalidator) for invalidator in invalidators.values()]
            return all(total(s, "invalidator_events_consumed_total") >= 30 for s in scraped)

        await wait_until(all_consumed, within=60, what="both regions to count 30 events")
        samples = await scrape(eu)
        labels = {"region": "eu", "group": settings.group_id("eu")}
        target = settings.targets("eu")[0].name
        assert total(samples, "invalidator_namespaces_purged_total", target=target) >= 30
        assert total(samples, "invalidator_purge_duration_seconds_count", **labels) >= 1
        assert total(samples, "invalidator_event_age_at_purge_seconds_count", **labels) >= 1
        assert total(samples, "invalidator_paused", **labels) == 0
        assert total(samples, "invalidator_purge_errors_total", **labels) == 0
        records, seconds = partitions(samples, "records"), partitions(samples, "seconds")
        assert records and records == seconds
        assert {topic for topic, _ in records} == set(CATALOGUE.topics())
        assert all(
            value >= 0 for (n, _), value in samples.items() if n.startswith("invalidator_lag")
        )


def partitions(samples: Samples, unit: str) -> set[tuple[str, str]]:
    """The (topic, partition) pairs of the lag gauge in `unit`."""
    return {
        (dict(ls)["topic"], dict(ls)["partition"])
        for n, ls in samples
        if n == f"invalidator_lag_{unit}"
    }


class _HoldRejoin(ConsumerRebalanceListener):  # type: ignore[misc]
    """Keeps its member from rejoining a rebalance until released: the group's other members
    wait for their assignment meanwhile."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked:
            await self.release.wait()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass


async def test_readyz_fails_until_partitions_are_assigned(settings: InvalidatorSettings) -> None:
    settings = settings.model_copy(update={"metrics_port": 0})
    group, topics = settings.group_id("eu"), CATALOGUE.topics()
    await start_at_log_end(settings.kafka, group, topics)
    hold = _HoldRejoin()
    holder = AIOKafkaConsumer(
        group_id=group,
        enable_auto_commit=False,
        # held in its revoke callback, it sends no heartbeat: it must outlast the wait
        session_timeout_ms=60_000,
        rebalance_timeout_ms=60_000,
        **settings.kafka.client_kwargs(),
    )
    holder.subscribe(topics=topics, listener=hold)
    await holder.start()
    invalidator = Invalidator(settings, region="eu", catalogue=CATALOGUE)
    task: asyncio.Task[None] | None = None
    try:
        await wait_until(
            lambda: _holds(holder), within=60, what="the holding member to own the partitions"
        )
        # The group cannot finish the rebalance the invalidator's join starts until the holder
        # rejoins, which it does only once released: until then nothing is assigned to it.
        task = asyncio.create_task(invalidator.run())

        async def serving() -> bool:
            return invalidator.metrics_address is not None

        await wait_until(serving, within=60, what="the endpoints to listen")
        assert await probe(invalidator, "/readyz") == (
            503,
            {"ok": False, "reason": "no partition assigned"},
        )
        hold.release.set()

        async def ready() -> bool:
            return (await probe(invalidator, "/readyz"))[0] == 200

        await wait_until(ready, within=60, what="/readyz to pass once partitions are assigned")
    finally:
        hold.release.set()
        invalidator.stop()
        if task is not None:
            await asyncio.wait_for(task, timeout=60)
        await holder.stop()


async def _holds(consumer: AIOKafkaConsumer) -> bool:
    return bool(consumer.assignment())


async def test_readyz_fails_once_paused_beyond_the_threshold(
    settings: InvalidatorSettings, publisher: EventPublisher
) -> None:
    proxy, settings = await region_through_proxy(settings, "eu")
    settings = settings.model_copy(update={"metrics_port": 0, "ready_max_paused_s": 1.0})
    try:
        async with running_invalidators(settings, CATALOGUE, regions=("eu",)) as invalidators:
            eu = invalidators["eu"]
            assert (await probe(eu, "/readyz"))[0] == 200
            await proxy.cut()
            await publish_orders(publisher, 5)

            async def not_ready() -> bool:
                return (await probe(eu, "/readyz"))[0] == 503

            await wait_until(not_ready, within=60, what="/readyz to fail while paused")
            status, body = await probe(eu, "/readyz")
            assert (status, body["ok"]) == (503, False) and "paused" in body["reason"]
            assert (await probe(eu, "/healthz"))[0] == 200
            samples = await scrape(eu)
            assert total(samples, "invalidator_paused") == 1
            assert total(samples, "invalidator_purge_retries_total") >= 1
            assert total(samples, "invalidator_lag_records") >= 1

            await proxy.restore()

            async def recovered() -> bool:
                samples = await scrape(eu)
                return (
                    (await probe(eu, "/readyz"))[0] == 200
                    and total(samples, "invalidator_paused") == 0
                    and total(samples, "invalidator_events_consumed_total") >= 5
                )

            await wait_until(recovered, within=60, what="/readyz to pass once Redis is back")
    finally:
        await proxy.cut()
