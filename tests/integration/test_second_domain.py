"""A team's own catalogue (not orders), checked and purged end to end on the real stack."""

from __future__ import annotations

import uuid

from contracts.layout import generation_key
from contracts.testing import assert_purges, purged_namespaces
from invalidator import InvalidatorSettings
from invalidator.cli import main
from producers import CacheClient, EventPublisher, RedisClient
from tests.integration import library
from tests.integration.invalidators import REGIONS, running_invalidators
from tests.integration.kafka_tools import ensure_topic
from tests.waiting import wait_until


def test_the_library_catalogue_passes_the_checks() -> None:
    assert main(["catalogue", "check", "--catalogue", "tests.integration.library:CATALOGUE"]) == 0


async def test_a_book_published_by_two_authors_purges_both_bibliographies_everywhere(
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    caches: dict[str, CacheClient],
    redis_clients: dict[str, RedisClient],
) -> None:
    await ensure_topic(settings.kafka, library.TOPIC, partitions=3)
    run = uuid.uuid4().hex[:8]
    event = library.BookPublished(
        book_id=f"b-{run}", author_ids=(f"a1-{run}", f"a2-{run}"), genre=f"poetry-{run}"
    )
    assert_purges(
        event,
        {
            f"author:a1-{run}:books",
            f"author:a2-{run}:books",
            f"book:b-{run}",
            f"genre:poetry-{run}:new",
        },
        catalogue=library.CATALOGUE,
    )
    namespaces = purged_namespaces(event, catalogue=library.CATALOGUE)
    before = {
        (region, ns.key): (await caches[region].read(ns, "page:1")).generation
        for region in REGIONS
        for ns in namespaces
    }

    async with running_invalidators(settings, library.CATALOGUE):
        await publisher.publish(event, tenant="city-library", aggregate_version=1)

        async def purged_everywhere() -> bool:
            for region in REGIONS:
                for ns in namespaces:
                    current = await redis_clients[region].get(generation_key(ns))
                    if current == before[(region, ns.key)]:
                        return False
            return True

        await wait_until(purged_everywhere, within=30, what="the library namespaces to be purged")
