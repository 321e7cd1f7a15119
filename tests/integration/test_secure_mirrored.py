"""Everything runs on the secure profile's mirrored topology (`stack.sh up --secure --mirrored`):
a SASL_SSL cluster per region, MirrorMaker 2 between them logged in as `mirror` with its own
ACLs, each region's invalidator on its own cluster, each region's Redis over TLS.

What keeps it quick is stack.sh's MirrorMaker settings: replication factor 1 for every topic
it creates (the defaults, 2 and 3, fail on one broker after a minute of retries), `linger.ms=0`
on its producer (else 5 ms a record), and the event topics created before it starts (a topic
created later is seen only at the next `refresh.topics.interval.seconds`, 10 here, 600 by
default)."""

from __future__ import annotations

import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import TopicAuthorizationFailedError

from contracts.example_orders import CATALOGUE, COMPANY_ORDERS, OrderCreated
from contracts.namespaces import BoundNamespace
from invalidator import InvalidatorSettings
from producers import EventPublisher, RedisClient
from tests.faults.accounting import account
from tests.integration.invalidators import running_invalidators
from tests.integration.kafka_tools import records_to_end
from tests.integration.mirrored import MIRRORED_REGIONS, other_region
from tests.integration.secure_mirrored import MIRROR_PRINCIPAL, SecureMirrored, secure_mirrored
from tests.integration.secure_profile import cache_clients
from tests.waiting import wait_until

# A cold `up --secure --mirrored` starts two brokers and two MirrorMakers, and applies the ACLs
# on each: minutes on a loaded 2-core host.
pytestmark = [pytest.mark.timeout(900), pytest.mark.long]

EVENTS = 20
PURGE_WITHIN_S = 60.0
"""A mirrored record reaches the other region within seconds; a loaded host may take longer."""


@pytest.fixture(scope="module")
def topology() -> SecureMirrored:
    """The secure mirrored topology (brought up by stack.sh unless
    INVALIDATOR_TEST_SECURE_MIRRORED_ENV names its settings; fails if it cannot be had)."""
    return secure_mirrored()


@pytest.fixture
async def cache_redis(topology: SecureMirrored) -> AsyncIterator[dict[str, RedisClient]]:
    """`cache_clients` of both regions of the topology."""
    async with cache_clients(topology.profile, MIRRORED_REGIONS) as clients:
        yield clients


async def test_events_published_in_eu_are_purged_in_both_regions_through_the_mirror(
    topology: SecureMirrored, cache_redis: dict[str, RedisClient]
) -> None:
    """Events published as `publisher` on eu's cluster are purged in eu by eu's invalidator and
    in us by us's, which reads them from the topic MirrorMaker mirrored into us's cluster: every
    event id in every region."""
    base = InvalidatorSettings(
        kafka=topology.profile.invalidator_kafka,
        regions=topology.profile.invalidator_regions,
        # Under `invalidator.`: the groups the invalidator's ACL lets it join.
        group_prefix=f"invalidator.secure-mirrored-{uuid.uuid4().hex[:10]}",
        stats_interval_s=3600,
    )
    settings = {region: topology.invalidator_settings(base, region) for region in MIRRORED_REGIONS}
    published: dict[str, BoundNamespace] = {}
    async with (
        running_invalidators(settings["eu"], CATALOGUE, regions=["eu"]) as eu,
        running_invalidators(settings["us"], CATALOGUE, regions=["us"]) as us,
        EventPublisher(topology.profile.publisher_kafka, source="orders-api") as publisher,
    ):
        for _ in range(EVENTS):
            company = f"c-{uuid.uuid4().hex[:12]}"
            envelope = await publisher.publish(
                OrderCreated(order_id=f"o-{company}", company_id=company, total_cents=1),
                tenant="acme",
                aggregate_version=1,
            )
            published[str(envelope.event_id)] = COMPANY_ORDERS.bind(company_id=company)

        async def purged_everywhere() -> bool:
            return not any((await account(published, cache_redis)).lost.values())

        await wait_until(
            purged_everywhere,
            within=PURGE_WITHIN_S,
            what="every event purged in both regions",
            interval=0.2,
        )
        outcome = await account(published, cache_redis)
        assert outcome.purged == dict.fromkeys(MIRRORED_REGIONS, EVENTS), outcome
        for region, running in (("eu", eu["eu"]), ("us", us["us"])):
            assert (running.stats.purge_errors, running.stats.dead_letter_errors) == (0, 0), region


def test_no_password_in_mirror_makers_logs_configs_or_command_lines(
    topology: SecureMirrored,
) -> None:
    """Each MirrorMaker's log, its properties (0600, naming its password's file only) and its
    command line hold no Kafka password."""
    passwords = topology.kafka_passwords()
    assert "mirror" in passwords and all(passwords.values()), sorted(passwords)
    found: list[str] = []
    for path in [*topology.mirror_maker_logs(), *topology.mirror_maker_configs()]:
        text = path.read_text()
        assert text, f"{path} is empty"
        found += [f"{user}'s in {path}" for user, word in passwords.items() if word in text]
    for path in topology.mirror_maker_configs():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} is readable by others"
    for pid in topology.mirror_maker_pids():
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        assert "MirrorMaker" in command_line, f"pid {pid} is not a MirrorMaker"
        found += [
            f"{user}'s in pid {pid}" for user, word in passwords.items() if word in command_line
        ]
    assert found == [], f"passwords found: {found}"


async def test_mirror_makers_stored_connector_configs_name_the_password_file_only(
    topology: SecureMirrored,
) -> None:
    """The connector configs each MirrorMaker stores in its config topic on the target
    (mm2-configs.<source>.internal, read as `admin`) hold a reference to the password's file,
    not the password."""
    passwords = topology.kafka_passwords()
    for target in MIRRORED_REGIONS:
        topic = f"mm2-configs.{other_region(target)}.internal"
        admin = topology.kafka_login(target, "admin")
        stored = b"".join(
            record.value or b""
            for record in await records_to_end(admin, {TopicPartition(topic, 0): 0})
        )
        assert b"${file:" in stored, f"{topic} on {target} holds no connector config"
        leaked = [user for user, word in passwords.items() if word.encode() in stored]
        assert leaked == [], f"{topic} on {target} holds the passwords of {leaked}"


async def test_the_mirror_principal_may_not_publish_events(topology: SecureMirrored) -> None:
    """`mirror` reads the event topics and writes only the mirrored ones: a write to a domain
    topic is refused."""
    producer = AIOKafkaProducer(**topology.kafka_login("eu", MIRROR_PRINCIPAL).client_kwargs())
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait("orders.events", b"not mine", key=b"k")
    finally:
        await producer.stop()
