"""`python -m bench.naive_subscriber`: the baseline a team writes first, one event at a time.

A FastStream subscriber (committing after each message) that purges every namespace an orders
event concerns with `SCAN MATCH <key prefix>*` and `DEL` of each key found, on the region's
Redis. No batching, no coalescing, no generations: cost grows with the keyspace.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from contracts import KafkaConnection, RedisTarget
from invalidator.purge import escape_glob
from producers import RedisClient, connect_redis

SCAN_COUNT = 1_000


def key_prefixes(event: dict[str, Any]) -> list[str]:
    """The key prefixes of what an orders event makes stale (all of the entries of each)."""
    payload = event.get("payload", {})
    prefixes = []
    if company := payload.get("company_id"):
        prefixes += [f"{{company:{company}:orders}}", f"{{company:{company}:order-stats}}"]
    if order := payload.get("order_id"):
        prefixes.append(f"{{order:{order}}}")
    return prefixes


async def purge_prefix(client: RedisClient, prefix: str) -> int:
    """SCAN the whole keyspace for `prefix*` and DEL every key found; how many."""
    deleted = 0
    async for key in client.scan_iter(match=escape_glob(prefix) + "*", count=SCAN_COUNT):
        deleted += int(await client.delete(key))
    return deleted


async def serve(kafka: KafkaConnection, target: RedisTarget, group_id: str, topic: str) -> None:
    """Subscribe in `group_id` and purge until SIGTERM or SIGINT.

    kafka: the brokers.
    target: the region's Redis.
    group_id: the consumer group (its committed offsets are where it starts).
    topic: the orders topic.
    """
    client = connect_redis(target)
    broker = KafkaBroker(kafka.bootstrap_servers, logger=None)

    @broker.subscriber(
        topic, group_id=group_id, ack_policy=AckPolicy.ACK, auto_offset_reset="earliest"
    )
    async def purge(event: dict[str, Any]) -> None:
        for prefix in key_prefixes(event):
            await purge_prefix(client, prefix)

    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    await broker.start()
    try:
        await stopping.wait()
    finally:
        await broker.stop()
        await client.aclose()


def main() -> None:
    """Parse the options and serve."""
    parser = argparse.ArgumentParser(prog="python -m bench.naive_subscriber", description=__doc__)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--redis-target", required=True, help="the target as JSON")
    parser.add_argument("--group", required=True)
    parser.add_argument("--topic", required=True)
    args = parser.parse_args()
    kafka = KafkaConnection(bootstrap_servers=args.bootstrap_servers)
    target = RedisTarget.model_validate_json(args.redis_target)
    asyncio.run(serve(kafka, target, args.group, args.topic))


if __name__ == "__main__":
    main()
