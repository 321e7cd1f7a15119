"""On the secure profile (`stack.sh up --secure`), an invalidator whose principal lacks one right
it needs takes the defect path: its partitions pause, the failure is logged naming what failed
and why and counted on /metrics (never as an outage), no offset is committed past an event not
yet purged, and nothing is lost. Once `admin` grants the right it heals without a restart:
every published event is purged in both regions or dead-lettered with its reason.

Each test leaves the profile's rights as it found them (other tests use it)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from functools import partial

import pytest
from aiokafka import TopicPartition

from contracts import EventEnvelope, KafkaConnection
from contracts.example_orders import CATALOGUE, ORDER, OrderCreated
from contracts.namespaces import BoundNamespace
from contracts.topics import DEAD_LETTER
from invalidator import Invalidator, InvalidatorSettings
from invalidator.operators import committed_offsets, end_offsets
from producers import RedisClient
from tests.faults.accounting import Accounting, account, dead_letters
from tests.faults.kafka_server import topic_write_acl
from tests.faults.records import WireRecord, malformed, publish_raw, wire
from tests.integration.endpoints import scrape, total
from tests.integration.invalidators import REGIONS, running_invalidators
from tests.integration.kafka_tools import all_caught_up, delete_topic, ensure_topic
from tests.integration.secure_profile import SecureProfile
from tests.integration.secure_rights import (
    change_kafka_acls,
    kafka_admin,
    redis_user_rights,
    set_redis_user,
)
from tests.waiting import wait_until

EVENTS = 6
WITHIN_S = 60.0
POLL_S = 0.2
"""Between two checks of a condition that opens Kafka clients (TLS and SCRAM: not cheap)."""
DEFECT_RETRY_S = 1.0
"""How often a defect is retried (`retry_max_s`): a granted right shows within a second."""
Positions = dict[str, tuple[TopicPartition, int]]
"""Event id -> where it was published."""


def invalidator_settings(secure: SecureProfile, *, dead_letter_topic: str) -> InvalidatorSettings:
    """Both regions as the profile's `invalidator` principal and Redis user, in groups of this
    test (under `invalidator.`, which its ACL lets it join), metrics served on a free port."""
    return InvalidatorSettings(
        kafka=secure.invalidator_kafka,
        regions=secure.invalidator_regions,
        group_prefix=f"invalidator.missing-acl-{uuid.uuid4().hex[:10]}",
        dead_letter_topic=dead_letter_topic,
        retry_max_s=DEFECT_RETRY_S,
        metrics_port=0,
        stats_interval_s=3600,
    )


def new_orders(count: int) -> tuple[list[WireRecord], dict[str, BoundNamespace]]:
    """`count` OrderCreated records as EventPublisher publishes them, and each one's event id ->
    the order namespace whose generation token proves its purge."""
    run = uuid.uuid4().hex[:8]
    records, published = [], {}
    for i in range(count):
        order_id = f"o-{run}-{i}"
        envelope = EventEnvelope.wrap(
            OrderCreated(order_id=order_id, company_id=f"c-{run}", total_cents=i),
            source="orders-api",
            tenant="acme",
            aggregate_version=1,
        )
        records.append(wire(envelope))
        published[str(envelope.event_id)] = ORDER.bind(order_id=order_id)
    return records, published


async def publish_as_publisher(secure: SecureProfile, records: list[WireRecord]) -> Positions:
    """Publish `records` as the principal `publisher`; where each landed, by event id."""
    landed = await publish_raw(secure.publisher_kafka, records)
    return {
        record.event_id: (TopicPartition(meta.topic, meta.partition), meta.offset)
        for record, meta in zip(records, landed, strict=True)
    }


async def committed_past_unpurged(
    kafka: KafkaConnection,
    group: str,
    *,
    positions: Positions,
    published: Mapping[str, BoundNamespace],
    region_redis: RedisClient,
) -> list[str]:
    """The events not purged in the region of `group` (its Redis: `region_redis`) that `group`
    committed past: must be none while a right is missing (nothing is dead-lettered then). The
    commits are read first, the purges after: a purge only ever adds."""
    committed = await committed_offsets(kafka, group)
    unpurged = (await account(published, {"region": region_redis})).lost["region"]
    return [
        event_id
        for event_id in unpurged
        if committed.get(positions[event_id][0], 0) > positions[event_id][1]
    ]


async def defect_reported(invalidator: Invalidator, counter: str) -> bool:
    """Whether /metrics shows the partitions paused and `counter` at 2 or more (the first
    attempt and a retry failed)."""
    samples = await scrape(invalidator)
    return total(samples, "invalidator_paused") == 1 and total(samples, counter) >= 2


def defect_lines(caplog: pytest.LogCaptureFixture, group: str) -> list[str]:
    """The error lines the invalidator of `group` logged."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.ERROR and group in record.getMessage()
    ]


def assert_no_secret_logged(secure: SecureProfile, caplog: pytest.LogCaptureFixture) -> None:
    """No password of the profile appears in what was logged (tracebacks included)."""
    logged = caplog.text
    for name in ("kafka-invalidator", "redis-invalidator", "kafka-admin", "redis-admin"):
        found = secure.password(name).get_secret_value() in logged  # never shown, even on failure
        assert not found, f"the password {name} was logged"


def assert_accounted(accounting: Accounting) -> None:
    """Every published event is purged in every region or dead-lettered, nothing else."""
    accounting.assert_nothing_lost()
    for region, purged in accounting.purged.items():
        assert purged + accounting.dead_lettered == accounting.published, (region, accounting)


async def test_a_dead_letter_topic_it_may_not_write_pauses_and_heals_when_granted(
    secure: SecureProfile,
    cache_redis: dict[str, RedisClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A poison event arrives while the invalidator may not write its dead-letter topic (no
    ACL on it): each region's group counts dead_letter_errors, neither an outage nor a purge
    failure, writes and commits nothing past the poison; once admin grants Write and Describe,
    each group dead-letters it (reason `malformed`) and purges every other event."""
    caplog.set_level(logging.INFO, logger="invalidator")
    admin = kafka_admin(secure)
    denied = f"invalidator.dead-letter.{uuid.uuid4().hex[:8]}"
    await ensure_topic(admin, denied, partitions=1)
    settings = invalidator_settings(secure, dead_letter_topic=denied)
    groups = {region: settings.group_id(region) for region in REGIONS}
    records, published = new_orders(EVENTS)
    poison_order = f"o-poison-{uuid.uuid4().hex[:8]}"
    poison = malformed("not_json", order_id=poison_order)
    records.insert(EVENTS // 2, poison)
    published[poison.event_id] = ORDER.bind(order_id=poison_order)  # undecodable: never purged
    try:
        async with running_invalidators(settings, CATALOGUE) as running:
            positions = await publish_as_publisher(secure, records)
            for region, invalidator in running.items():
                await wait_until(
                    partial(defect_reported, invalidator, "invalidator_dead_letter_errors_total"),
                    within=WITHIN_S,
                    what=f"{region}: paused, dead_letter_errors counted while Write is denied",
                )
            for region, invalidator in running.items():
                stats = invalidator.stats
                assert (stats.dead_letter_retries, stats.purge_retries) == (0, 0), (
                    f"{region}: a missing ACL was taken for an outage"
                )
                assert (stats.purge_errors, stats.dead_lettered) == (0, 0), (
                    f"{region}: counted as a purge failure, or dead-lettered while denied"
                )
                past = await committed_past_unpurged(
                    secure.invalidator_kafka,
                    groups[region],
                    positions=positions,
                    published=published,
                    region_redis=cache_redis[region],
                )
                assert not past, f"{region} committed past events neither purged nor dead-lettered"
                lines = defect_lines(caplog, groups[region])
                assert any(
                    "sending dead letters" in line
                    and "TopicAuthorizationFailedError" in line
                    and denied in line
                    for line in lines
                ), f"{region}: no error line naming the topic and the cause: {lines}"
            assert sum((await end_offsets(admin, [denied])).values()) == 0, "written while denied"

            await change_kafka_acls(secure, "--add", *topic_write_acl("invalidator", denied))

            async def healed() -> bool:
                letters = {letter.event_id for letter in await dead_letters(admin, denied)}
                settled = await account(published, cache_redis, dead_lettered=letters)
                return not settled.lost_events and await all_caught_up(
                    secure.invalidator_kafka, list(groups.values()), CATALOGUE.topics()
                )

            await wait_until(
                healed,
                within=WITHIN_S,
                what="dead letters and commits once granted",
                interval=POLL_S,
            )
            letters = await dead_letters(admin, denied)
            assert sorted((d.group, d.event_id, d.reason) for d in letters) == sorted(
                (group, poison.event_id, "malformed") for group in groups.values()
            ), "each group dead-letters the poison once, with its reason"
            accounting = await account(
                published, cache_redis, dead_lettered={d.event_id for d in letters}
            )
            assert_accounted(accounting)
            assert accounting.dead_lettered == 1
            for region, invalidator in running.items():
                assert total(await scrape(invalidator), "invalidator_paused") == 0, region
                assert invalidator.stats.dead_letter_retries == 0, region
        assert_no_secret_logged(secure, caplog)
    finally:
        await change_kafka_acls(
            secure, "--remove", "--force", *topic_write_acl("invalidator", denied)
        )
        await delete_topic(admin, denied)


async def test_a_redis_command_its_user_lacks_on_the_us_cluster_pauses_us_until_granted(
    secure: SecureProfile,
    cache_redis: dict[str, RedisClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With EVAL and EVALSHA taken from the Redis user `invalidator` on every node of the us
    Cluster (replicas included), us counts purge_errors, not outage retries, purges and commits
    nothing, while eu purges everything; once granted again on every node, us purges every
    event and commits, and the user's rights are what they were."""
    caplog.set_level(logging.INFO, logger="invalidator")
    settings = invalidator_settings(secure, dead_letter_topic=DEAD_LETTER)
    groups = {region: settings.group_id(region) for region in REGIONS}
    records, published = new_orders(EVENTS)
    rights_before = await redis_user_rights(secure, "us", "invalidator")
    try:
        async with running_invalidators(settings, CATALOGUE) as running:
            await set_redis_user(secure, "us", "invalidator", "-eval", "-evalsha")
            positions = await publish_as_publisher(secure, records)

            async def eu_purged() -> bool:
                settled = await account(published, {"eu": cache_redis["eu"]})
                return not settled.lost_events and await all_caught_up(
                    secure.invalidator_kafka, [groups["eu"]], CATALOGUE.topics()
                )

            await wait_until(
                eu_purged, within=WITHIN_S, what="eu's purges while us is denied", interval=POLL_S
            )
            await wait_until(
                partial(defect_reported, running["us"], "invalidator_purge_errors_total"),
                within=WITHIN_S,
                what="us: paused, purge_errors counted while EVAL is denied",
            )
            us = running["us"].stats
            assert us.purge_retries == 0, "a missing permission was taken for an outage"
            assert running["eu"].stats.purge_errors == 0, "eu's Redis user was changed too"
            written = (await account(published, {"us": cache_redis["us"]})).purged["us"]
            assert written == 0, f"{written} generation tokens written on us while EVAL is denied"
            past = await committed_past_unpurged(
                secure.invalidator_kafka,
                groups["us"],
                positions=positions,
                published=published,
                region_redis=cache_redis["us"],
            )
            assert not past, "us committed past events it did not purge"
            lines = defect_lines(caplog, groups["us"])
            assert any(
                "purge on us-cluster" in line and "NoPermissionError" in line and "eval" in line
                for line in lines
            ), f"no error line naming the target and the cause: {lines}"

            await set_redis_user(secure, "us", "invalidator", "+eval", "+evalsha")

            async def healed() -> bool:
                settled = await account(published, cache_redis)
                return not settled.lost_events and await all_caught_up(
                    secure.invalidator_kafka, list(groups.values()), CATALOGUE.topics()
                )

            await wait_until(
                healed, within=WITHIN_S, what="us's purges once EVAL is granted", interval=POLL_S
            )
            accounting = await account(published, cache_redis)
            assert_accounted(accounting)
            assert accounting.purged == dict.fromkeys(REGIONS, EVENTS)
            assert total(await scrape(running["us"]), "invalidator_paused") == 0
            assert running["us"].stats.purge_retries == 0
        rights_after = await redis_user_rights(secure, "us", "invalidator")
        assert rights_after == rights_before, "the user's rights on us are not what they were"
        assert_no_secret_logged(secure, caplog)
    finally:
        await set_redis_user(secure, "us", "invalidator", "+eval", "+evalsha")
