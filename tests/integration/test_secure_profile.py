"""Everything runs on the local stack's secure profile (`stack.sh up --secure`): Kafka over
SASL_SSL with an ACL per principal, both regions' Redis over TLS with ACL users, PostgreSQL over
TLS with a password user. Each client logs in as its own principal, with the settings `stack.sh
env --secure` prints."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError
from redis.exceptions import NoPermissionError

from contracts.example_orders import CATALOGUE, COMPANY_ORDERS, OrderCreated
from contracts.namespaces import BoundNamespace
from contracts.topics import DEAD_LETTER
from invalidator import InvalidatorSettings
from invalidator.cli import main
from invalidator.operators import EXIT_OK
from producers import CacheClient, EventPublisher, Fetched, RedisClient, Source
from producers.outbox import OutboxRelay, add_event, create_outbox_table
from producers.outbox.cli import engine_of
from tests.faults.accounting import account
from tests.integration.invalidators import REGIONS, running_invalidators
from tests.integration.secure_profile import SecureProfile
from tests.waiting import wait_until

EVENTS = 5
PURGE_WITHIN_S = 60.0


async def _purged_everywhere(
    published: dict[str, BoundNamespace], clients: dict[str, RedisClient], what: str
) -> None:
    async def purged() -> bool:
        return not (await account(published, clients)).lost_events

    await wait_until(purged, within=PURGE_WITHIN_S, what=what, interval=0.2)


async def test_publisher_relay_invalidators_and_cache_on_the_secure_profile(
    secure: SecureProfile, cache_redis: dict[str, RedisClient]
) -> None:
    """EventPublisher's events and an outbox row relayed from PostgreSQL are purged in both
    regions by both invalidators; a cached page is a hit before and a miss after."""
    settings = InvalidatorSettings(
        kafka=secure.invalidator_kafka,
        regions=secure.invalidator_regions,
        # Under `invalidator.`: the groups the invalidator's ACL lets it join.
        group_prefix=f"invalidator.secure-{uuid.uuid4().hex[:10]}",
        stats_interval_s=3600,
    )
    companies = [f"c-{uuid.uuid4().hex[:12]}" for _ in range(EVENTS)]
    page = COMPANY_ORDERS.bind(company_id=companies[0])
    caches = {region: CacheClient(client) for region, client in cache_redis.items()}
    loads = dict.fromkeys(REGIONS, 0)

    async def fetch(region: str) -> Fetched:
        async def load() -> bytes:
            loads[region] += 1
            return f"orders-{loads[region]}".encode()

        return await caches[region].fetch(page, "page:1", load)

    for region in REGIONS:
        assert await fetch(region) == Fetched(b"orders-1", Source.LOADED)
        assert await fetch(region) == Fetched(b"orders-1", Source.HIT)
    async with (
        EventPublisher(secure.publisher_kafka, source="orders-api") as publisher,
        running_invalidators(settings, CATALOGUE) as running,
    ):
        published: dict[str, BoundNamespace] = {}
        for company in companies:
            envelope = await publisher.publish(
                OrderCreated(order_id=f"o-{company}", company_id=company, total_cents=1),
                tenant="acme",
                aggregate_version=1,
            )
            published[str(envelope.event_id)] = COMPANY_ORDERS.bind(company_id=company)
        await _purged_everywhere(published, cache_redis, "every published event purged")
        for region in REGIONS:
            assert await fetch(region) == Fetched(b"orders-2", Source.LOADED)

        relayed = await _relay_one_row(secure)
        await _purged_everywhere(relayed, cache_redis, "the relayed row's purge")
        for region in REGIONS:
            stats = running[region].stats
            assert (stats.purge_errors, stats.dead_letter_errors) == (0, 0), region


async def _relay_one_row(secure: SecureProfile) -> dict[str, BoundNamespace]:
    """Commit an outbox row in PostgreSQL (TLS, user relay) and relay it (SASL_SSL, principal
    relay); returns its event id -> the namespace it purges."""
    company = f"c-outbox-{uuid.uuid4().hex[:12]}"
    engine = engine_of(secure.relay)
    relay = OutboxRelay(engine, secure.relay.kafka)
    try:
        await create_outbox_table(engine)
        async with engine.begin() as connection:
            envelope = await add_event(
                connection,
                OrderCreated(order_id=f"o-{company}", company_id=company, total_cents=1),
                source="orders-api",
                tenant="acme",
                aggregate_version=1,
            )
        await relay.start()
        assert await relay.relay_once() >= 1
    finally:
        await relay.stop_producer()
        await engine.dispose()
    return {str(envelope.event_id): COMPANY_ORDERS.bind(company_id=company)}


@pytest.mark.parametrize("command", [("topics", "check"), ("offsets", "show", "--region", "eu")])
async def test_operator_commands_on_the_secure_profile(
    command: tuple[str, ...],
    secure: SecureProfile,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With the INVALIDATOR_* lines of `env --secure` (the topics `up --secure` created)."""
    for name, value in secure.invalidator_environment().items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    status = await asyncio.to_thread(main, [*command, "--json"])
    out, err = capsys.readouterr()
    assert status == EXIT_OK, err
    assert json.loads(out)


async def test_the_watchdog_judges_as_its_own_principal(
    secure: SecureProfile, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`invalidator watch --since` reads the topics as Kafka user `watchdog` and the generation
    tokens as Redis user `watchdog`."""
    for name, value in secure.watchdog_environment().items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    status = await asyncio.to_thread(main, ["watch", "--since", "10m", "--json"])
    out, err = capsys.readouterr()
    assert status == EXIT_OK, err
    assert json.loads(out)


async def test_a_permission_a_principal_lacks_is_refused(
    secure: SecureProfile, cache_redis: dict[str, RedisClient]
) -> None:
    """The publisher may not write the dead-letter topic; the cache's Redis user may not
    FLUSHALL, in either region."""
    producer = AIOKafkaProducer(**secure.publisher_kafka.client_kwargs())
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(DEAD_LETTER, b"not mine", key=b"k")
    finally:
        await producer.stop()
    for client in cache_redis.values():
        with pytest.raises(NoPermissionError):
            await client.flushall()
