"""End-to-end check of the docker-compose.yml stack, run inside its network by
deploy/containers/check.sh (the us Cluster's nodes announce container addresses).

With the services' own settings (INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS, INVALIDATOR_REGIONS):
waits until each region's invalidator group is Stable with a member, fills one entry of each
namespace an OrderCreated purges in both regions (eu standalone, us Cluster), publishes the
event, waits until every one of those namespaces has a new generation in both regions, and
reads each filled entry back as a miss.

The mirrored topology (docker-compose.mirrored.yml): COMPOSE_CHECK_CLUSTERS, JSON
{"eu": "kafka:9092", "us": "kafka-us:9092"}, names each region's own cluster. Each group is then
looked for on its region's cluster, each region's mirrored topics (MirrorMaker's
<other region>.<topic>) must appear there, and one OrderCreated is published in each region's
cluster: both must be purged in both regions, the remote one through MirrorMaker.
Prints each step; exits 1 naming what did not happen.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from contracts import BoundNamespace
from contracts.example_orders import COMPANY_ORDER_STATS, COMPANY_ORDERS, ORDER, OrderCreated
from invalidator import InvalidatorSettings
from invalidator.operators import group_state, missing_topics
from producers import CacheClient, EventPublisher, connect_redis

REGIONS = ("eu", "us")
CLUSTERS_VARIABLE = "COMPOSE_CHECK_CLUSTERS"
JOIN_WITHIN_S = 120.0
MIRROR_WITHIN_S = 120.0
PURGE_WITHIN_S = 30.0
MIRRORED_PURGE_WITHIN_S = 60.0
POLL_S = 0.2


class CheckFailedError(Exception):
    """A step did not happen within its deadline."""


@dataclass(frozen=True)
class Publication:
    """One event the check publishes: in which region's cluster, and what it purges."""

    region: str
    event: OrderCreated
    namespaces: list[BoundNamespace]


async def within(seconds: float, what: str, condition: Callable[[], Awaitable[bool]]) -> float:
    """Poll `condition` until true; the seconds it took, or CheckFailedError naming `what`."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > seconds:
            raise CheckFailedError(f"{what}: not within {seconds:.0f}s")
        await asyncio.sleep(POLL_S)
    return time.monotonic() - started


def region_settings(settings: InvalidatorSettings) -> dict[str, InvalidatorSettings]:
    """Each region's settings: the services' own, or in the mirrored topology (the
    CLUSTERS_VARIABLE set) with that region's cluster and the other regions mirrored into it."""
    clusters: dict[str, str] = json.loads(os.environ.get(CLUSTERS_VARIABLE) or "{}")
    if not clusters:
        return dict.fromkeys(REGIONS, settings)
    return {
        region: settings.model_copy(
            update={
                "kafka": settings.kafka.model_copy(update={"bootstrap_servers": clusters[region]}),
                "mirrored_from": [other for other in REGIONS if other != region],
            }
        )
        for region in REGIONS
    }


async def joined(settings: InvalidatorSettings, region: str) -> bool:
    """Whether the region's consumer group is Stable with at least one member."""
    state = await group_state(settings.kafka, settings.group_id(region))
    return state.state == "Stable" and state.active


async def mirrored_topics_present(settings: InvalidatorSettings) -> bool:
    """Whether every topic mirrored into this region's cluster exists there."""
    catalogue = settings.load_catalogue()
    return not await missing_topics(settings, settings.mirrored_topics(catalogue))


async def generations(
    caches: dict[str, CacheClient], namespaces: list[BoundNamespace]
) -> dict[tuple[str, str], bytes]:
    """The current generation of each namespace in each region."""
    return {
        (region, namespace.key): (await cache.read(namespace, "check")).generation
        for region, cache in caches.items()
        for namespace in namespaces
    }


def publication(region: str) -> Publication:
    """A new OrderCreated to publish in `region`'s cluster, and the namespaces it purges."""
    suffix = f"{region}-{uuid.uuid4().hex[:12]}"
    order_id, company_id = f"o-{suffix}", f"c-{suffix}"
    return Publication(
        region=region,
        event=OrderCreated(order_id=order_id, company_id=company_id, total_cents=100),
        namespaces=[
            COMPANY_ORDERS.bind(company_id=company_id),
            COMPANY_ORDER_STATS.bind(company_id=company_id),
            ORDER.bind(order_id=order_id),
        ],
    )


async def check(settings: InvalidatorSettings) -> None:
    """The steps; raises CheckFailedError on the first that does not happen."""
    per_region = region_settings(settings)
    mirrored = any(region.mirrored_from for region in per_region.values())
    for region, own in per_region.items():
        where = f" on {own.kafka.bootstrap_servers}" if mirrored else ""
        took = await within(
            JOIN_WITHIN_S,
            f"invalidator group {own.group_id(region)} joined{where}",
            functools.partial(joined, own, region),
        )
        print(
            f"invalidator group {own.group_id(region)}{where}: Stable with a member ({took:.1f}s)"
        )
    if mirrored:
        for region, own in per_region.items():
            topics = ", ".join(own.mirrored_topics(own.load_catalogue()))
            took = await within(
                MIRROR_WITHIN_S,
                f"{topics} created in {region}'s cluster by MirrorMaker "
                f"({', '.join(own.mirrored_from)}->{region}, mm2-{region})",
                functools.partial(mirrored_topics_present, own),
            )
            print(f"{region}'s cluster has the mirrored topics {topics} ({took:.1f}s)")

    publications = [publication(region) for region in (REGIONS if mirrored else REGIONS[:1])]
    namespaces = [ns for p in publications for ns in p.namespaces]
    clients = {region: connect_redis(settings.targets(region)[0]) for region in REGIONS}
    try:
        caches = {region: CacheClient(client) for region, client in clients.items()}
        for cache in caches.values():
            for namespace in namespaces:
                await cache.get_or_fill(namespace, "check", _value)
        before = await generations(caches, namespaces)
        print(f"filled {', '.join(ns.key for ns in namespaces)} in {', '.join(REGIONS)}")

        for p in publications:
            async with EventPublisher(per_region[p.region].kafka, source="compose-check") as pub:
                await pub.publish(p.event, tenant="compose-check", aggregate_version=1)
            where = f" in {p.region}'s cluster" if mirrored else ""
            print(
                f"published OrderCreated(order_id={p.event.order_id}, "
                f"company_id={p.event.company_id}){where}"
            )

        published_in = {ns.key: p.region for p in publications for ns in p.namespaces}

        async def not_purged() -> list[str]:
            now = await generations(caches, namespaces)
            return [
                f"{key} in {region}" + (f" (published in {published_in[key]})" if mirrored else "")
                for (region, key), gen in before.items()
                if now[region, key] == gen
            ]

        async def all_purged() -> bool:
            return not await not_purged()

        deadline = MIRRORED_PURGE_WITHIN_S if mirrored else PURGE_WITHIN_S
        events = "both events" if mirrored else "every namespace"
        try:
            took = await within(deadline, f"{events} purged in eu and us", all_purged)
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
        print(f"FAILED: {failure}")  # stdout: the report check.sh shows and keeps
        return 1
    print("compose check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
