"""Orders events for the benchmarks: company ids by workload, envelopes, bulk pre-production."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from contracts import EventEnvelope, KafkaConnection
from contracts.example_orders import COMPANY_ORDER_STATS, COMPANY_ORDERS, ORDER, OrderStatusChanged
from contracts.layout import generation_key

ZIPF_COMPANIES = 10_000
ZIPF_EXPONENT = 1.1
UNIFORM_COMPANIES = 1_000_000
WORKLOADS = ("zipf", "uniform")
_SEND_CHUNK = 5_000


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """One pre-built orders event: what goes on the wire and whom it concerns."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    company_id: str
    order_id: str


class CompanyPicker:
    """Company ids of a workload: Zipf(1.1) over 10,000 companies, or uniform over 1,000,000."""

    def __init__(self, workload: str, *, run_id: str, seed: int = 1) -> None:
        """workload: `zipf` or `uniform`.
        run_id: prefixes every id, so that a run's namespaces are fresh in Redis.
        seed: of the random choices.
        """
        if workload not in WORKLOADS:
            raise ValueError(f"workload must be one of {WORKLOADS}, got {workload!r}")
        self._workload = workload
        self._run_id = run_id
        self._random = random.Random(seed)
        weights = [1 / (rank**ZIPF_EXPONENT) for rank in range(1, ZIPF_COMPANIES + 1)]
        self._cumulative = list(itertools.accumulate(weights))

    def pick(self, count: int) -> list[str]:
        """`count` company ids drawn from the workload's distribution."""
        if self._workload == "zipf":
            ranks = self._random.choices(
                range(ZIPF_COMPANIES), cum_weights=self._cumulative, k=count
            )
        else:
            ranks = [self._random.randrange(UNIFORM_COMPANIES) for _ in range(count)]
        return [f"{self._run_id}-c{rank}" for rank in ranks]


def order_record(company_id: str, order_id: str, *, aggregate_version: int = 1) -> OrderRecord:
    """The record of an `OrderStatusChanged` event (purges 3 namespaces), as `publish` sends it."""
    envelope = EventEnvelope.wrap(
        OrderStatusChanged(
            order_id=order_id, company_id=company_id, old_status="placed", new_status="paid"
        ),
        source="bench",
        tenant="bench",
        aggregate_version=aggregate_version,
    )
    return OrderRecord(
        topic=OrderStatusChanged.topic,
        key=envelope.partition_key(),
        value=envelope.to_bytes(),
        headers=[(name, value.encode()) for name, value in envelope.headers().items()],
        company_id=company_id,
        order_id=order_id,
    )


def order_records(picker: CompanyPicker, count: int, *, run_id: str, tag: str) -> list[OrderRecord]:
    """`count` events, each on a new order (unique id) of a company drawn by `picker`.

    run_id: prefixes the order ids.
    tag: tells this set's order ids from other sets of the run.
    """
    return [
        order_record(company, f"{run_id}-{tag}-o{n}")
        for n, company in enumerate(picker.pick(count))
    ]


def generation_keys(records: list[OrderRecord]) -> set[str]:
    """The generation keys the events purge (company orders, company order stats, order)."""
    keys: set[str] = set()
    for record in records:
        keys.add(generation_key(COMPANY_ORDERS.bind(company_id=record.company_id)))
        keys.add(generation_key(COMPANY_ORDER_STATS.bind(company_id=record.company_id)))
        keys.add(generation_key(ORDER.bind(order_id=record.order_id)))
    return keys


def bare_producer(kafka: KafkaConnection, **options: Any) -> Any:
    """An aiokafka producer configured as EventPublisher's: acks=all, idempotent."""
    return AIOKafkaProducer(
        acks="all", enable_idempotence=True, client_id="bench", **options, **kafka.client_kwargs()
    )


async def produce_all(kafka: KafkaConnection, records: list[OrderRecord]) -> None:
    """Send every record (send, then gather per chunk) and wait for all acknowledgements."""
    producer = bare_producer(kafka, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        for chunk in _chunks(records, _SEND_CHUNK):
            confirmations = [
                await producer.send(r.topic, r.value, key=r.key, headers=r.headers) for r in chunk
            ]
            await asyncio.gather(*confirmations)
    finally:
        await producer.stop()


def _chunks(records: list[OrderRecord], size: int) -> Iterator[list[OrderRecord]]:
    for start in range(0, len(records), size):
        yield records[start : start + size]
