"""The invalidator, CacheClient and the watchdog work with the least-privilege Redis users of
`deploy/redis-acl.conf`, on a Redis whose default user is disabled, and can do nothing more."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewTopic
from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from bench.stack import REPO
from contracts import RedisTarget
from contracts.example_orders import CATALOGUE, COMPANY_ORDERS
from contracts.layout import entry_key, generation_key
from contracts.topics import DEAD_LETTER, ORDERS
from invalidator import InvalidatorSettings
from invalidator.operators import committed_offsets, end_offsets
from invalidator.watchdog import Outcome as WatchOutcome
from producers import CacheClient, EventPublisher, Source, connect_redis
from tests.faults.accounting import Outcome, account, record_outcome
from tests.faults.kafka_server import ADMIN as KAFKA_ADMIN
from tests.faults.kafka_server import SaslKafkaServer, topic_write_acl
from tests.faults.order_stream import publish_company_order
from tests.integration.invalidators import running_invalidators
from tests.integration.kafka_tools import caught_up
from tests.integration.redis_server import RedisServer
from tests.integration.watchdog import (
    CollectedResults,
    judged,
    orders,
    publish_all,
    running_watchdog,
)
from tests.waiting import wait_until

ACL_FILE = REPO / "deploy" / "redis-acl.conf"
PASSWORDS = {
    "invalidator": "inv-" + uuid.uuid4().hex,
    "cache": "cache-" + uuid.uuid4().hex,
    "watchdog": "watch-" + uuid.uuid4().hex,
}
ADMIN = ("admin", "admin-" + uuid.uuid4().hex)


def acl_config() -> str:
    """The users of deploy/redis-acl.conf with passwords, an admin, and no default user."""
    lines = ["user default off", f"user {ADMIN[0]} on >{ADMIN[1]} ~* &* +@all"]
    for line in ACL_FILE.read_text().splitlines():
        if line.startswith("user "):
            name = line.split()[1]
            lines.append(line.replace(" on ", f" on >{PASSWORDS[name]} ", 1))
    assert len(lines) == 2 + len(PASSWORDS), f"{ACL_FILE} lacks a user of {sorted(PASSWORDS)}"
    return "\n".join(lines)


def target_as(server: RedisServer, user: str) -> RedisTarget:
    """A target on `server` logged in as one of the least-privilege users."""
    return RedisTarget(
        name=f"acl-{user}", url=server.url, username=user, password=SecretStr(PASSWORDS[user])
    )


@pytest.fixture
async def acl_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A standalone Redis with the least-privilege users."""
    server = RedisServer(tmp_path / "redis", config=acl_config())
    await server.start(admin=ADMIN)
    yield server
    await server.stop()


def eu_only_as_invalidator(
    settings: InvalidatorSettings, server: RedisServer
) -> InvalidatorSettings:
    """`settings` with one region, eu, on `server` as the invalidator user; defects retried
    every second (instead of every retry_max_s) so that a fixed ACL shows soon."""
    return settings.model_copy(
        update={"regions": {"eu": [target_as(server, "invalidator")]}, "retry_max_s": 1.0}
    )


async def test_invalidator_and_cache_work_with_least_privilege_users(
    settings: InvalidatorSettings, publisher: EventPublisher, acl_server: RedisServer
) -> None:
    settings = eu_only_as_invalidator(settings, acl_server)
    cache_client = connect_redis(target_as(acl_server, "cache"))
    cache = CacheClient(cache_client)
    invalidator_client = connect_redis(target_as(acl_server, "invalidator"))
    company = f"c-{uuid.uuid4().hex[:8]}"
    page = COMPANY_ORDERS.bind(company_id=company)
    version = b"v1"

    async def load() -> bytes:
        return version

    try:
        async with running_invalidators(settings, CATALOGUE, regions=("eu",)) as running:
            assert (await cache.fetch(page, "page:1", load)).source is Source.LOADED
            hit = await cache.fetch(page, "page:1", load)
            assert (hit.value, hit.source) == (b"v1", Source.HIT)
            generation_before = await cache_client.get(generation_key(page))

            version = b"v2"
            await publish_company_order(publisher, company)

            async def purged() -> bool:
                return await cache_client.get(generation_key(page)) != generation_before

            await wait_until(purged, within=60, what="the purge by the invalidator user")
            fetched = await cache.fetch(page, "page:1", load)
            assert (fetched.value, fetched.source) == (b"v2", Source.LOADED)
            stats = running["eu"].stats
            assert (stats.purge_retries, stats.purge_errors) == (0, 0)

        with pytest.raises(NoPermissionError):
            await invalidator_client.get(entry_key(page, "page:1"))  # cannot read values
        for client in (invalidator_client, cache_client):
            with pytest.raises(NoPermissionError):
                await client.flushall()
            with pytest.raises(NoPermissionError):
                await client.set("not-a-cache-key", b"x")
            with pytest.raises(NoPermissionError):
                await client.config_get("*")
    finally:
        await cache_client.aclose()
        await invalidator_client.aclose()


async def test_the_watchdog_judges_with_a_user_that_may_only_read_generations(
    settings: InvalidatorSettings, publisher: EventPublisher, acl_server: RedisServer
) -> None:
    invalidating = eu_only_as_invalidator(settings, acl_server)
    watching = settings.model_copy(update={"regions": {"eu": [target_as(acl_server, "watchdog")]}})
    collected = CollectedResults()
    async with (
        running_invalidators(invalidating, CATALOGUE, regions=("eu",)),
        running_watchdog(watching, CATALOGUE, collected),
    ):
        event_ids = await publish_all(publisher, orders(20))
        await wait_until(
            lambda: judged(collected, ["eu"], event_ids),
            within=60,
            what="the watchdog user's judgements",
        )
    assert set(collected.outcomes("eu", event_ids).values()) == {WatchOutcome.SEEN}
    watchdog_client = connect_redis(target_as(acl_server, "watchdog"))
    page = COMPANY_ORDERS.bind(company_id="c-1")
    try:
        for forbidden in (
            watchdog_client.set(generation_key(page), b"x"),
            watchdog_client.get(entry_key(page, "page:1")),
            watchdog_client.delete(generation_key(page)),
        ):
            with pytest.raises(NoPermissionError):
                await forbidden
    finally:
        await watchdog_client.aclose()


async def test_a_missing_permission_is_a_defect_and_heals_when_the_acl_is_fixed(
    settings: InvalidatorSettings, publisher: EventPublisher, acl_server: RedisServer
) -> None:
    """Without the scripts its purges run, the invalidator counts purge_errors (not outage
    retries), commits nothing, and purges as soon as the ACL is fixed, without a restart."""
    settings = eu_only_as_invalidator(settings, acl_server)
    group = settings.group_id("eu")
    admin = Redis(port=acl_server.port, username=ADMIN[0], password=ADMIN[1])
    company = f"c-{uuid.uuid4().hex[:8]}"
    page = COMPANY_ORDERS.bind(company_id=company)
    try:
        async with running_invalidators(settings, CATALOGUE, regions=("eu",)) as running:
            stats = running["eu"].stats
            committed_before = await committed_offsets(settings.kafka, group)
            await admin.acl_setuser("invalidator", enabled=True, commands=["-eval", "-evalsha"])
            await publish_company_order(publisher, company)

            async def reported() -> bool:
                return stats.purge_errors >= 2

            await wait_until(reported, within=60, what="purge_errors while EVAL is denied")
            assert stats.purge_retries == 0, "a missing permission was taken for an outage"
            assert not await admin.exists(generation_key(page))
            assert await committed_offsets(settings.kafka, group) == committed_before, (
                "offsets were committed while the purge was denied"
            )

            await admin.acl_setuser("invalidator", enabled=True, commands=["+eval", "+evalsha"])

            async def healed() -> bool:
                topics = CATALOGUE.topics()
                return bool(await admin.exists(generation_key(page))) and await caught_up(
                    settings.kafka, group, topics
                )

            await wait_until(healed, within=60, what="the purge and commit once EVAL is allowed")
            assert stats.purge_retries == 0
    finally:
        await admin.aclose()


async def test_invalidator_works_with_least_privilege_kafka_acls(
    settings: InvalidatorSettings, acl_kafka: SaslKafkaServer, acl_server: RedisServer
) -> None:
    as_invalidator = acl_kafka.connection("invalidator")
    as_admin = acl_kafka.connection(KAFKA_ADMIN)
    settings = eu_only_as_invalidator(settings, acl_server).model_copy(
        update={"kafka": as_invalidator, "group_prefix": "invalidator"}
    )
    group = settings.group_id("eu")
    company = f"c-{uuid.uuid4().hex[:8]}"
    page = COMPANY_ORDERS.bind(company_id=company)
    redis_admin = Redis(port=acl_server.port, username=ADMIN[0], password=ADMIN[1])
    try:
        async with (
            EventPublisher(acl_kafka.connection("publisher"), source="orders-api") as publisher,
            running_invalidators(settings, CATALOGUE, regions=("eu",)) as running,
        ):
            dead_letters_before = sum((await end_offsets(as_admin, [DEAD_LETTER])).values())
            published = await publish_company_order(publisher, company)
            await publisher.broker.publish(b"not an event", topic=ORDERS, key=b"k")
            stats = running["eu"].stats

            async def purged_and_dead_lettered() -> bool:
                done = stats.dead_lettered >= 1 and bool(
                    await redis_admin.exists(generation_key(page))
                )
                return done and await caught_up(as_admin, group, CATALOGUE.topics())

            await wait_until(purged_and_dead_lettered, within=60, what="purge and dead letter")
            assert (stats.purge_retries, stats.purge_errors, stats.dead_lettered) == (0, 0, 1)
            accounting = await account({str(published.event_id): page}, {"eu": redis_admin})
            accounting.assert_nothing_lost()
            dead_letters = await end_offsets(as_admin, [DEAD_LETTER])
            assert sum(dead_letters.values()) - dead_letters_before == 1

            producer = AIOKafkaProducer(**as_invalidator.client_kwargs())
            await producer.start()
            try:
                with pytest.raises(TopicAuthorizationFailedError):
                    await producer.send_and_wait(ORDERS, b"x", key=b"k")
            finally:
                await producer.stop()
            with pytest.raises(GroupAuthorizationFailedError):
                await committed_offsets(as_invalidator, "other.eu")
        record_outcome(
            Outcome("least privilege: Kafka ACLs", 2, lost=0, dead_lettered=1, recover_s=None)
        )
    finally:
        await redis_admin.aclose()


async def test_a_dead_letter_topic_it_may_not_write_is_a_defect_and_heals_when_granted(
    settings: InvalidatorSettings, acl_kafka: SaslKafkaServer, acl_server: RedisServer
) -> None:
    """Without WRITE on its dead-letter topic, the invalidator counts dead_letter_errors (neither
    purge retries nor outage retries), commits nothing, and sends the dead letter once the ACL
    grants it, without a restart."""
    denied = f"invalidator.dead-letter.{uuid.uuid4().hex[:8]}"
    async with acl_kafka.admin() as admin:
        await admin.create_topics([NewTopic(denied, 1, replication_factor=1)])
    as_admin = acl_kafka.connection(KAFKA_ADMIN)
    settings = eu_only_as_invalidator(settings, acl_server).model_copy(
        update={
            "kafka": acl_kafka.connection("invalidator"),
            "group_prefix": "invalidator",
            "dead_letter_topic": denied,
        }
    )
    group = settings.group_id("eu")
    async with (
        EventPublisher(acl_kafka.connection("publisher"), source="orders-api") as publisher,
        running_invalidators(settings, CATALOGUE, regions=("eu",)) as running,
    ):
        stats = running["eu"].stats
        committed_before = await committed_offsets(as_admin, group)
        await publisher.broker.publish(b"not an event", topic=ORDERS, key=b"k")

        async def reported() -> bool:
            return stats.dead_letter_errors >= 2

        await wait_until(reported, within=60, what="dead_letter_errors while WRITE is denied")
        assert (stats.purge_retries, stats.purge_errors, stats.dead_letter_retries) == (0, 0, 0)
        assert stats.dead_lettered == 0
        assert await committed_offsets(as_admin, group) == committed_before, (
            "offsets were committed while the dead letter could not be written"
        )

        await acl_kafka.run_tool(
            "org.apache.kafka.tools.AclCommand",
            *("--bootstrap-server", f"127.0.0.1:{acl_kafka.port}"),
            *("--command-config", str(acl_kafka.admin_properties())),
            "--add",
            *topic_write_acl("invalidator", denied),
        )

        async def healed() -> bool:
            return stats.dead_lettered == 1 and await caught_up(as_admin, group, CATALOGUE.topics())

        await wait_until(healed, within=60, what="the dead letter and commit once WRITE is granted")
        assert sum((await end_offsets(as_admin, [denied])).values()) == 1
        assert stats.dead_letter_retries == 0
