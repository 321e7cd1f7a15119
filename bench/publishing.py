"""The publishing figure: events/s of EventPublisher.publish and publish_many, against the limit.

`publish`: awaited one after the other (a request handler's pattern). `publish_many`: batches of
`batch` events, one wait per batch. The limit: a bare aiokafka producer with the same settings
(acks=all, idempotent), pre-serialised records, send then gather. All to the orders topic.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from bench.orders_load import CompanyPicker, bare_producer, order_records
from contracts.example_orders import OrderStatusChanged
from invalidator.settings import InvalidatorSettings
from producers import EventPublisher, EventToPublish


@dataclass(frozen=True)
class PublishingParams:
    """What the publishing figure runs."""

    sequential_events: int = 5_000
    batched_events: int = 50_000
    batch: int = 1_000
    bare_events: int = 50_000


def _events(run_id: str, count: int) -> list[EventToPublish]:
    companies = CompanyPicker("zipf", run_id=run_id).pick(count)
    return [
        EventToPublish(
            OrderStatusChanged(
                order_id=f"{run_id}-o{n}",
                company_id=company,
                old_status="placed",
                new_status="paid",
            ),
            tenant="bench",
            aggregate_version=1,
        )
        for n, company in enumerate(companies)
    ]


async def run_publishing(
    settings: InvalidatorSettings, params: PublishingParams, *, run_id: str
) -> dict[str, Any]:
    """Measure the three publishers one after the other; events/s and ratios to the limit.

    settings: the endpoints.
    params: how many events each publishes.
    run_id: unique to the run (ids).
    """
    results: dict[str, Any] = {}
    async with EventPublisher(settings.kafka, source="bench") as publisher:
        events = _events(f"{run_id}-seq", params.sequential_events)
        started = time.perf_counter()
        for item in events:
            await publisher.publish(
                item.event, tenant=item.tenant, aggregate_version=item.aggregate_version
            )
        results["publish"] = rate(len(events), time.perf_counter() - started)
        events = _events(f"{run_id}-many", params.batched_events)
        started = time.perf_counter()
        for start in range(0, len(events), params.batch):
            await publisher.publish_many(events[start : start + params.batch])
        results["publish_many"] = rate(len(events), time.perf_counter() - started)
    records = order_records(
        CompanyPicker("zipf", run_id=f"{run_id}-bare"), params.bare_events,
        run_id=f"{run_id}-bare", tag="p",
    )  # fmt: skip
    producer = bare_producer(settings.kafka)
    await producer.start()
    try:
        started = time.perf_counter()
        confirmations = [
            await producer.send(r.topic, r.value, key=r.key, headers=r.headers) for r in records
        ]
        await asyncio.gather(*confirmations)
        results["bare"] = rate(len(records), time.perf_counter() - started)
    finally:
        await producer.stop()
    for name in ("publish", "publish_many"):
        results[name]["ratio_to_bare"] = round(
            results[name]["events_per_s"] / results["bare"]["events_per_s"], 3
        )
    print(
        "[publishing] "
        + " | ".join(f"{name} {r['events_per_s']:,.0f}/s" for name, r in results.items()),
        flush=True,
    )
    return results


def rate(events: int, seconds: float) -> dict[str, Any]:
    """Events, seconds and events/s, as every throughput figure reports them."""
    return {"events": events, "seconds": round(seconds, 3), "events_per_s": round(events / seconds)}
