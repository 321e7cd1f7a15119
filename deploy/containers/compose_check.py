"""End-to-end check of the docker-compose.yml stack, run inside its network by
deploy/containers/check.sh (the us Cluster's nodes announce container addresses).

With the services' own settings (INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS, INVALIDATOR_REGIONS):
waits until each region's invalidator group is Stable with a member, fills one entry of each
namespace an OrderCreated purges in both regions (eu standalone, us Cluster), publishes the
event, waits until every one of those namespaces has a new generation in both regions, and
reads each filled entry back as a miss.
Prints each step; exits 1 naming what did not happen.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

from contracts import BoundNamespace
from contracts.orders import COMPANY_ORDER_STATS, COMPANY_ORDERS, ORDER, OrderCreated
from invalidator import InvalidatorSettings
from invalidator.operators import group_state
from producers import CacheClient, EventPublisher, connect_redis

REGIONS = ("eu", "us")
JOIN_WITHIN_S = 120.0
PURGE_WITHIN_S = 30.0
POLL_S = 0.2


class CheckFailedError(Exception):
    """A step did not happen within its deadline."""


async def within(seconds: float, what: str, condition: Callable[[], Awaitable[bool]]) -> float:
    """Poll `condition` until true; the seconds it took, or CheckFailedError naming `what`."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > seconds:
            raise CheckFailedError(f"{what}: not within {seconds:.0f}s")
        await asyncio.sleep(POLL_S)
    return time.monotonic() - started


async def joined(settings: InvalidatorSettings, region: str) -> bool:
    """Whether the region's consumer group is Stable with at least one member."""
    state = await group_state(settings.kafka, settings.group_id(region))
    return state.state == "Stable" and state.active


async def generations(
    caches: dict[str, CacheClient], namespaces: list[BoundNamespace]
) -> dict[tuple[str, str], bytes]:
    """The current generation of each namespace in each region."""
    return {
        (region, namespace.key): (await cache.read(namespace, "check")).generation
        for region, cache in caches.items()
        for namespace in namespaces
    }


async def check(settings: InvalidatorSettings) -> None:
    """The steps; raises CheckFailedError on the first that does not happen."""
    for region in REGIONS:
        took = await within(
            JOIN_WITHIN_S,
            f"invalidator group {settings.group_id(region)} joined",
            functools.partial(joined, settings, region),
        )
        print(f"invalidator group {settings.group_id(region)}: Stable with a member ({took:.1f}s)")

    suffix = uuid.uuid4().hex[:12]
    order_id, company_id = f"o-{suffix}", f"c-{suffix}"
    namespaces = [
        COMPANY_ORDERS.bind(company_id=company_id),
        COMPANY_ORDER_STATS.bind(company_id=company_id),
        ORDER.bind(order_id=order_id),
    ]
    clients = {region: connect_redis(settings.targets(region)[0]) for region in REGIONS}
    try:
        caches = {region: CacheClient(client) for region, client in clients.items()}
        for cache in caches.values():
            for namespace in namespaces:
                await cache.get_or_fill(namespace, "check", _value)
        before = await generations(caches, namespaces)
        print(f"filled {', '.join(ns.key for ns in namespaces)} in {', '.join(REGIONS)}")

        async with EventPublisher(settings.kafka, source="compose-check") as publisher:
            await publisher.publish(
                OrderCreated(order_id=order_id, company_id=company_id, total_cents=100),
                tenant="compose-check",
                aggregate_version=1,
            )
        print(f"published OrderCreated(order_id={order_id}, company_id={company_id})")

        async def not_purged() -> list[str]:
            now = await generations(caches, namespaces)
            return [
                f"{key} in {region}"
                for (region, key), gen in before.items()
                if now[region, key] == gen
            ]

        async def all_purged() -> bool:
            return not await not_purged()

        try:
            took = await within(PURGE_WITHIN_S, "every namespace purged in eu and us", all_purged)
        except CheckFailedError as failure:
            raise CheckFailedError(
                f"{failure}; not purged: {', '.join(await not_purged())}"
            ) from None
        print(f"purged {len(namespaces)} namespaces in each of {', '.join(REGIONS)} ({took:.2f}s)")
        for region, cache in caches.items():
            for namespace in namespaces:
                if await cache.get(namespace, "check") is not None:
                    raise CheckFailedError(
                        f"{namespace.key} in {region}: the filled entry still hits"
                    )
        print("every filled entry misses after the purge")
    finally:
        for client in clients.values():
            await client.aclose()


async def _value() -> bytes:
    return b"compose-check"


def main() -> int:
    """Run the check; 0 when every step happened, 1 otherwise."""
    try:
        asyncio.run(check(InvalidatorSettings()))
    except CheckFailedError as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    print("compose check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
