"""`python -m bench.bare_consumer`: the drain limit, a bare aiokafka consumer group.

getmany of up to 2,000 records, `json.loads` of every value, a commit after every batch; runs
until SIGTERM. The group must have committed its start offsets before (the bench does). It
connects as the invalidator would: with the INVALIDATOR_KAFKA__* variables (TLS and login too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from aiokafka import AIOKafkaConsumer

from contracts import KafkaConnection
from contracts.settings import read_settings
from invalidator.settings import InvalidatorSettings

MAX_RECORDS = 2_000


async def consume(kafka: KafkaConnection, group_id: str, topics: list[str]) -> None:
    """Consume `topics` in `group_id` until SIGTERM or SIGINT.

    kafka: the brokers.
    group_id: the consumer group (its committed offsets are where it starts).
    topics: what to consume.
    """
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    consumer = AIOKafkaConsumer(
        *topics,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **kafka.client_kwargs(),
    )
    await consumer.start()
    try:
        while not stopping.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=MAX_RECORDS)
            if not batch:
                continue
            for records in batch.values():
                for record in records:
                    json.loads(record.value)
            await consumer.commit()
    finally:
        await consumer.stop()


def main() -> None:
    """Parse the options and consume."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare_consumer", description=__doc__)
    parser.add_argument("--group", required=True)
    parser.add_argument("topics", nargs="+")
    args = parser.parse_args()
    asyncio.run(consume(read_settings(InvalidatorSettings).kafka, args.group, args.topics))


if __name__ == "__main__":
    main()
