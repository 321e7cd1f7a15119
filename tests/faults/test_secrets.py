"""A Kafka SASL password and a Redis password never show in anything the `invalidator` command
writes: logs at DEBUG, error messages, `--json` output, the stats file; neither as they are,
URL-encoded nor base64-encoded (as in a SASL PLAIN message or an HTTP Basic header)."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from redis.asyncio import Redis

from contracts.example_orders import CATALOGUE, COMPANY_ORDERS
from contracts.layout import generation_key
from invalidator import InvalidatorSettings
from invalidator.operators import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    start_at_log_end,
)
from producers import EventPublisher
from tests.faults.accounting import Outcome, account, record_outcome
from tests.faults.kafka_server import SaslKafkaServer
from tests.faults.order_stream import publish_company_order
from tests.integration.cli import run_cli, spawn_cli
from tests.integration.redis_server import RedisServer, free_port
from tests.waiting import wait_until

KAFKA_USER = "invalidator"
KAFKA_PASSWORD = f"kafka+{uuid.uuid4().hex}/pw=@%"
REDIS_PASSWORD = f"redis+{uuid.uuid4().hex}/pw=@%"
WRONG_REDIS_PASSWORD = f"wrong+{uuid.uuid4().hex}/pw=@%"
SECRETS = (KAFKA_PASSWORD, REDIS_PASSWORD, WRONG_REDIS_PASSWORD)


def disguises(secret: str) -> set[str]:
    """The secret as it is, URL-encoded, and the part of its base64 that does not depend on what
    precedes or follows it (at each of the three alignments), standard and URL-safe."""
    raw = secret.encode()
    forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * shift + raw).decode()
            forms.add(encoded[4 if shift else 0 : -4])
    return forms


def assert_no_secret(outputs: Mapping[str, str], secrets: Iterable[str] = SECRETS) -> None:
    """Fail naming each output (label -> text) that holds a secret in any disguise."""
    leaks = [
        f"{label}: {form!r}"
        for label, text in outputs.items()
        for secret in secrets
        for form in disguises(secret)
        if form in text
    ]
    assert not leaks, "secrets found in: " + "; ".join(leaks)


def regions_json(server: RedisServer, password: str) -> str:
    """INVALIDATOR_REGIONS with one region, eu, on `server` with `password`."""
    target = {"name": "eu-auth", "url": server.url, "password": password}
    return json.dumps({"eu": [target]})


def sasl_env(bootstrap_servers: str, password: str = KAFKA_PASSWORD) -> dict[str, str]:
    """Kafka settings with SASL PLAIN credentials (KAFKA_USER, `password`), to
    `bootstrap_servers`."""
    return {
        "INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers,
        "INVALIDATOR_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "INVALIDATOR_KAFKA__SASL_MECHANISM": "PLAIN",
        "INVALIDATOR_KAFKA__SASL_USERNAME": KAFKA_USER,
        "INVALIDATOR_KAFKA__SASL_PASSWORD": password,
    }


async def run_all(
    commands: Mapping[str, tuple[list[str], dict[str, str]]],
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run each labelled command (arguments, environment) at DEBUG level, side by side, each to
    its end within the CLI timeout; returns their results by label."""

    def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return run_cli("--log-level", "DEBUG", *args, env=env)

    results = await asyncio.gather(
        *(asyncio.to_thread(run, args, env) for args, env in commands.values())
    )
    return dict(zip(commands, results, strict=True))


def outputs_of(results: Mapping[str, subprocess.CompletedProcess[str]]) -> dict[str, str]:
    """Every command's stdout and stderr, labelled."""
    outputs: dict[str, str] = {}
    for label, result in results.items():
        outputs[f"{label} (stdout)"] = result.stdout
        outputs[f"{label} (stderr)"] = result.stderr
    return outputs


async def run_until(
    env: dict[str, str],
    output: Path,
    meanwhile: Coroutine[Any, Any, None],
    *,
    log_format: str = "text",
) -> str:
    """Run `invalidator run --region eu` at DEBUG, its logs in `log_format`, while `meanwhile`
    runs, then SIGTERM it; returns all it wrote. Fails if it exits before, or does not stop
    within 60 s."""
    options = ("--log-level", "DEBUG", "--log-format", log_format)
    process = spawn_cli(*options, "run", "--region", "eu", env=env, output=output)
    waiting = asyncio.create_task(meanwhile)
    exited = asyncio.create_task(asyncio.to_thread(process.wait))
    try:
        await asyncio.wait({waiting, exited}, return_when=asyncio.FIRST_COMPLETED)
        assert not exited.done(), f"invalidator run exited early:\n{output.read_text()[-3000:]}"
        await waiting
    finally:
        waiting.cancel()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(exited, timeout=60)
    return output.read_text()


@pytest.fixture
async def auth_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A standalone Redis whose default user has REDIS_PASSWORD."""
    server = RedisServer(tmp_path / "redis", config=f'requirepass "{REDIS_PASSWORD}"')
    await server.start(admin=("default", REDIS_PASSWORD))
    yield server
    await server.stop()


@pytest.fixture
async def auth_client(auth_server: RedisServer) -> AsyncIterator[Redis]:
    """A client of the authenticated Redis (to check what the invalidator did)."""
    client = Redis(port=auth_server.port, password=REDIS_PASSWORD)
    yield client
    await client.aclose()


def base_env(settings: InvalidatorSettings, server: RedisServer, stats: Path) -> dict[str, str]:
    """The environment of a working invalidator on `server`, with both passwords set (the Kafka
    one without a mechanism: the local broker has no SASL listener)."""
    return {
        "INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "INVALIDATOR_KAFKA__SASL_USERNAME": KAFKA_USER,
        "INVALIDATOR_KAFKA__SASL_PASSWORD": KAFKA_PASSWORD,
        "INVALIDATOR_REGIONS": regions_json(server, REDIS_PASSWORD),
        "INVALIDATOR_GROUP_PREFIX": settings.group_prefix,
        "INVALIDATOR_STATS_FILE": str(stats),
        "INVALIDATOR_STATS_INTERVAL_S": "0.2",
        "INVALIDATOR_RETRY_MAX_S": "0.5",
    }


async def test_a_working_invalidator_and_the_operator_commands_show_no_password(
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    auth_server: RedisServer,
    auth_client: Redis,
    tmp_path: Path,
) -> None:
    stats = tmp_path / "stats.json"
    env = base_env(settings, auth_server, stats)
    await start_at_log_end(settings.kafka, settings.group_id("eu"), CATALOGUE.topics())
    company = f"c-{uuid.uuid4().hex[:8]}"
    page = COMPANY_ORDERS.bind(company_id=company)

    async def publish_and_wait_purged() -> None:
        async def purged_and_reported() -> bool:
            if not stats.is_file() or not await auth_client.exists(generation_key(page)):
                return False
            return int(json.loads(stats.read_text())["namespaces_purged"]) >= 1

        async def assigned() -> bool:
            return stats.is_file()  # written by the loop, once it runs

        await wait_until(assigned, within=60, what=f"the invalidator's stats file {stats}")
        published = await publish_company_order(publisher, company)
        await wait_until(purged_and_reported, within=60, what="the purge with a password")
        accounting = await account({str(published.event_id): page}, {"eu": auth_client})
        accounting.assert_nothing_lost()

    outputs = {
        "run": await run_until(
            env,
            tmp_path / "run.log",
            publish_and_wait_purged(),
        ),
        "stats file": stats.read_text(),
    }
    purge_args = ["purge", "--region", "eu", "company_orders", f"company_id={company}"]
    commands = {
        "offsets show": (["offsets", "show", "--json"], env),
        "offsets rewind": (["offsets", "rewind", "--region", "eu", "--to-latest", "--json"], env),
        "topics check": (["topics", "check", "--json"], env),
        "catalogue check": (["catalogue", "check"], env),
        "replay dry run": (
            ["replay", "--region", "eu", "--from", "10m", "--dry-run", "--json"],
            env,
        ),
        "purge": ([*purge_args, "--yes", "--json"], env),
    }
    results = await run_all(commands)
    failed = {label: r.stderr[-2000:] for label, r in results.items() if r.returncode != EXIT_OK}
    assert not failed, f"commands failed: {failed}"
    outputs.update(outputs_of(results))
    assert '"namespaces_purged"' in outputs["stats file"]
    assert company in outputs["purge (stdout)"], outputs["purge (stderr)"]
    assert_no_secret(outputs)
    record_outcome(
        Outcome("secrets: a working run", events=1, lost=0, dead_lettered=0, recover_s=None)
    )


async def test_failures_show_no_password(
    settings: InvalidatorSettings,
    publisher: EventPublisher,
    auth_server: RedisServer,
    tmp_path: Path,
) -> None:
    env = base_env(settings, auth_server, tmp_path / "stats.json")
    wrong = {**env, "INVALIDATOR_REGIONS": regions_json(auth_server, WRONG_REDIS_PASSWORD)}
    unreachable = {**env, **sasl_env(f"127.0.0.1:{free_port()}")}
    sasl_on_plain = {**env, **sasl_env(settings.kafka.bootstrap_servers)}
    target = {"name": "eu", "url": auth_server.url, "password": REDIS_PASSWORD}
    bad_settings = {
        "regions not JSON": json.dumps({"eu": [target]})[:-3],
        "regions with an unknown field": json.dumps({"eu": [{**target, "pass": REDIS_PASSWORD}]}),
        "password in the Redis URL": json.dumps(
            {"eu": [{"name": "eu", "url": f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0"}]}
        ),
        "password in a URL of another scheme": json.dumps(
            {"eu": [{"name": "eu", "url": f"http://u:{quote(REDIS_PASSWORD)}@host/"}]}
        ),
        "password not a string": json.dumps({"eu": [{**target, "password": [REDIS_PASSWORD]}]}),
    }
    commands = {
        "purge, wrong Redis password": (
            ["purge", "--region", "eu", "company_orders", "company_id=c1", "--yes", "--json"],
            wrong,
        ),
        "offsets show, SASL to a closed port": (["offsets", "show", "--json"], unreachable),
        "run, SASL to a closed port": (["run", "--region", "eu"], unreachable),
        "topics check, SASL to a plain listener": (["topics", "check", "--json"], sasl_on_plain),
        "credentials in the bootstrap servers": (
            ["offsets", "show", "--json"],
            {**env, "INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS": f"u:{KAFKA_PASSWORD}@127.0.0.1"},
        ),
        **{
            label: (["offsets", "show", "--json"], {**env, "INVALIDATOR_REGIONS": regions})
            for label, regions in bad_settings.items()
        },
    }
    results = await run_all(commands)
    expected = {label: EXIT_INPUT for label in bad_settings}
    expected["credentials in the bootstrap servers"] = EXIT_INPUT
    expected["purge, wrong Redis password"] = EXIT_INPUT  # a refused login, named
    expected["topics check, SASL to a plain listener"] = EXIT_INPUT  # a refused login, named
    statuses = {label: result.returncode for label, result in results.items()}
    assert statuses == {label: expected.get(label, EXIT_UNAVAILABLE) for label in commands}, (
        outputs_of(results)
    )
    outputs = outputs_of(results)

    await start_at_log_end(settings.kafka, settings.group_id("eu"), CATALOGUE.topics())
    company = f"c-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "run-wrong-password.log"

    async def purge_fails() -> None:
        async def reported() -> bool:
            return log.is_file() and "AuthenticationError" in log.read_text()

        await publish_company_order(publisher, company)
        await wait_until(reported, within=60, what=f"the authentication failure in {log}")

    outputs["run, wrong Redis password"] = await run_until(wrong, log, purge_fails())
    assert_no_secret(outputs)


async def test_a_sasl_login_shows_no_password(
    settings: InvalidatorSettings,
    acl_kafka: SaslKafkaServer,
    auth_server: RedisServer,
    auth_client: Redis,
    tmp_path: Path,
) -> None:
    """On a broker with SASL PLAIN users and ACLs: a working run (its logs as JSON lines) and
    operator commands, and a wrong Kafka password (KAFKA_PASSWORD is not the broker's)."""
    stats = tmp_path / "stats.json"
    password = acl_kafka.passwords[KAFKA_USER]
    env = {
        **base_env(settings, auth_server, stats),
        **sasl_env(f"127.0.0.1:{acl_kafka.port}", password),
        "INVALIDATOR_GROUP_PREFIX": "invalidator",  # the prefix its ACL allows
    }
    company = f"c-{uuid.uuid4().hex[:8]}"
    page = COMPANY_ORDERS.bind(company_id=company)

    async def publish_and_wait_purged() -> None:
        async def purged() -> bool:
            return bool(await auth_client.exists(generation_key(page)))

        async with EventPublisher(acl_kafka.connection("publisher"), source="orders-api") as pub:
            await publish_company_order(pub, company)
        await wait_until(purged, within=60, what="the purge by the SASL-authenticated invalidator")

    run_log = tmp_path / "run.log"
    outputs = {
        "run with SASL, JSON logs": await run_until(
            env, run_log, publish_and_wait_purged(), log_format="json"
        ),
        "stats file": stats.read_text(),
    }
    assert all(json.loads(line)["region"] == "eu" for line in run_log.read_text().splitlines())
    wrong = {**env, **sasl_env(f"127.0.0.1:{acl_kafka.port}", KAFKA_PASSWORD)}
    results = await run_all(
        {
            "offsets show with SASL": (["offsets", "show", "--json"], env),
            "topics check with SASL": (["topics", "check", "--json"], env),
            "topics check, wrong SASL password": (["topics", "check", "--json"], wrong),
            "run, wrong SASL password": (["run", "--region", "eu"], wrong),
        }
    )
    statuses = {label: result.returncode for label, result in results.items()}
    assert statuses == {
        "offsets show with SASL": EXIT_OK,
        "topics check with SASL": EXIT_OK,
        "topics check, wrong SASL password": EXIT_INPUT,
        "run, wrong SASL password": EXIT_INPUT,
    }, outputs_of(results)
    outputs.update(outputs_of(results))
    assert_no_secret(outputs, [*SECRETS, *acl_kafka.passwords.values()])
