"""`invalidator run` refuses to start when a server refuses the connection's TLS or login: one
line on standard error naming the endpoint and the cause, exit status 2 (EXIT_INPUT), no
traceback, and neither a password nor a private key in it.

Kafka: a broker whose client listeners are all SASL_SSL (SCRAM-SHA-512), one presenting the good
certificate, one the expired and one the wrong-host certificate. Redis: servers that
serve TLS only (with the good, the expired and the wrong-host certificate) and one that serves
plaintext only. Each case breaks one thing of settings that otherwise work."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from pydantic import SecretStr

from bench.settings_env import kafka_environment, regions_environment
from contracts import (
    Catalogue,
    KafkaConnection,
    Namespace,
    PurgeRule,
    PurgeStrategy,
    RedisTarget,
    TlsSettings,
)
from contracts.example_orders import OrderCreated
from contracts.topics import ORDERS
from invalidator import cli
from invalidator.operators import EXIT_INPUT
from producers import EventPublisher
from tests.certificates import Certificates
from tests.integration.cli import run_cli
from tests.integration.tls_kafka import (
    EXPIRED_LISTENER,
    WRONG_HOST_LISTENER,
    ScramTlsKafkaServer,
)
from tests.integration.tls_redis import TlsRedisServer

WRONG_PASSWORD = SecretStr(f"wrong-{uuid.uuid4().hex}")


@dataclass(frozen=True)
class Servers:
    """Every server of the module and the CA."""

    kafka: ScramTlsKafkaServer
    redis: TlsRedisServer
    expired: TlsRedisServer
    wrong_host: TlsRedisServer
    plaintext: TlsRedisServer
    certificates: Certificates

    @property
    def tls(self) -> TlsSettings:
        """Trusting the CA that signed every server certificate."""
        return TlsSettings(ca_file=str(self.certificates.ca))

    def good_kafka(self) -> KafkaConnection:
        """Settings the broker accepts."""
        return self.kafka.connection("invalidator", tls=self.tls)

    def good_redis(self) -> RedisTarget:
        """Settings the TLS Redis with the good certificate accepts."""
        return self.redis.target("invalidator", tls=self.tls)

    def secrets(self) -> list[str]:
        """Every password of every server, and the text of every private key."""
        passwords = [
            password
            for server in (self.kafka, self.redis, self.expired, self.wrong_host, self.plaintext)
            for password in server.passwords.values()
        ]
        certificates = self.certificates
        pairs = (
            certificates.server,
            certificates.client,
            certificates.expired,
            certificates.wrong_host,
            certificates.rotated,
        )
        keys = [pair.key.read_text().splitlines()[1] for pair in pairs]
        return [*passwords, WRONG_PASSWORD.get_secret_value(), *keys]


@dataclass(frozen=True)
class Refusal:
    """Settings one of the servers refuses, and what the refusal must say."""

    kafka: KafkaConnection
    target: RedisTarget
    endpoint: str
    cause: str


def _kafka_refused(servers: Servers, kafka: KafkaConnection, cause: str) -> Refusal:
    endpoint = f"Kafka {kafka.bootstrap_servers}"
    return Refusal(kafka, servers.good_redis(), endpoint, cause)


def _redis_refused(servers: Servers, target: RedisTarget, cause: str) -> Refusal:
    port = target.url.rsplit(":", 1)[1].split("/")[0]
    endpoint = f"Redis target {target.name} (127.0.0.1:{port})"
    return Refusal(servers.good_kafka(), target, endpoint, cause)


REFUSALS: dict[str, Callable[[Servers], Refusal]] = {
    "kafka-unknown-ca": lambda s: _kafka_refused(
        s,
        s.kafka.connection("invalidator", tls=TlsSettings(ca_file=str(s.certificates.unknown_ca))),
        "not signed by a CA the client trusts (unknown CA",
    ),
    "kafka-wrong-password": lambda s: _kafka_refused(
        s,
        s.kafka.connection("invalidator", tls=s.tls, password=WRONG_PASSWORD),
        "SASL SCRAM-SHA-512 login refused for user 'invalidator'",
    ),
    "kafka-sasl-mechanism-not-offered": lambda s: _kafka_refused(
        s,
        s.good_kafka().model_copy(update={"sasl_mechanism": "SCRAM-SHA-256"}),
        "the listener does not offer SASL SCRAM-SHA-256",
    ),
    "kafka-expired-certificate": lambda s: _kafka_refused(
        s,
        s.kafka.connection("invalidator", tls=s.tls, listener=EXPIRED_LISTENER),
        "the server's certificate has expired",
    ),
    "kafka-hostname-mismatch": lambda s: _kafka_refused(
        s,
        s.kafka.connection("invalidator", tls=s.tls, listener=WRONG_HOST_LISTENER),
        "not valid for the host name '127.0.0.1' (hostname mismatch)",
    ),
    "kafka-plaintext-against-tls": lambda s: _kafka_refused(
        s,
        s.good_kafka().model_copy(update={"security_protocol": "SASL_PLAINTEXT", "tls": None}),
        "the server speaks TLS on this port but the client connects in plaintext",
    ),
    "redis-unknown-ca": lambda s: _redis_refused(
        s,
        s.redis.target("invalidator", tls=TlsSettings(ca_file=str(s.certificates.unknown_ca))),
        "not signed by a CA the client trusts (unknown CA",
    ),
    "redis-expired-certificate": lambda s: _redis_refused(
        s, s.expired.target("invalidator", tls=s.tls), "the server's certificate has expired"
    ),
    "redis-hostname-mismatch": lambda s: _redis_refused(
        s,
        s.wrong_host.target("invalidator", tls=s.tls),
        "not valid for the host name '127.0.0.1' (hostname mismatch)",
    ),
    "redis-plaintext-against-tls": lambda s: _redis_refused(
        s,
        s.redis.target("invalidator", tls=None, url=s.redis.url.replace("rediss:", "redis:")),
        "the server speaks TLS on this port but the client connects in plaintext",
    ),
    "redis-tls-against-plaintext": lambda s: _redis_refused(
        s,
        s.plaintext.target(
            "invalidator", tls=s.tls, url=s.plaintext.url.replace("redis:", "rediss:")
        ).model_copy(update={"socket_timeout_s": 0.5}),
        "the client connects with TLS but the server speaks plaintext on this port",
    ),
    "redis-wrong-password": lambda s: _redis_refused(
        s,
        s.good_redis().model_copy(update={"password": WRONG_PASSWORD}),
        "login refused for user 'invalidator'",
    ),
}


@pytest.fixture(scope="module")
async def servers(
    tls_kafka: ScramTlsKafkaServer,
    tls_redis: TlsRedisServer,
    certificates: Certificates,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Servers]:
    """The session's broker and TLS Redis, and three Redis servers of this module that a
    client must refuse."""
    ca = certificates.ca
    bad = (
        TlsRedisServer(tmp_path_factory.mktemp("expired"), ca=ca, server=certificates.expired),
        TlsRedisServer(
            tmp_path_factory.mktemp("wrong-host"), ca=ca, server=certificates.wrong_host
        ),
        TlsRedisServer(
            tmp_path_factory.mktemp("plaintext"), ca=ca, server=certificates.server, plaintext=True
        ),
    )
    try:
        await asyncio.gather(*(server.start() for server in bad))
        yield Servers(tls_kafka, tls_redis, *bad, certificates=certificates)
    finally:
        await asyncio.gather(*(server.stop() for server in bad))


def _environment(refusal: Refusal) -> dict[str, str]:
    return {**kafka_environment(refusal.kafka), **regions_environment({"eu": [refusal.target]})}


def _assert_refused(status: int, err: str, refusal: Refusal, servers: Servers) -> None:
    assert status == EXIT_INPUT, err
    assert err.startswith(f"invalidator: {refusal.endpoint} refused the connection: "), err
    assert refusal.cause in err, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    leaked = [secret for secret in servers.secrets() if secret in err]
    assert leaked == [], "a secret is in the message"


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
async def test_run_refuses_to_start_naming_the_endpoint_and_the_cause(
    case: Callable[[Servers], Refusal],
    servers: Servers,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    refusal = case(servers)
    for name, value in _environment(refusal).items():
        monkeypatch.setenv(name, value)

    async def started(*_: object) -> list[str]:
        raise AssertionError("the connection check passed: the invalidator went on to start")

    monkeypatch.setattr(cli, "require_topics", started)
    capsys.readouterr()
    status = await asyncio.to_thread(cli.main, ["run", "--region", "eu"])
    _assert_refused(status, capsys.readouterr().err, refusal, servers)


def test_the_invalidator_process_exits_2_on_a_refusal(servers: Servers) -> None:
    refusal = REFUSALS["redis-wrong-password"](servers)
    result = run_cli("run", "--region", "eu", env=_environment(refusal), timeout=60)
    _assert_refused(result.returncode, result.stderr, refusal, servers)


@pytest.mark.parametrize(
    ("command", "case"),
    [
        (("offsets", "show"), "kafka-unknown-ca"),
        (("topics", "check"), "kafka-wrong-password"),
        (("offsets", "show"), "kafka-plaintext-against-tls"),
        (("offsets", "show"), "kafka-expired-certificate"),
        (("topics", "check"), "kafka-hostname-mismatch"),
    ],
    ids=lambda value: value if isinstance(value, str) else " ".join(value),
)
async def test_an_operator_command_names_the_refusal_behind_a_failed_bootstrap(
    command: tuple[str, ...],
    case: str,
    servers: Servers,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exit status 2 and, on the last line, the endpoint and the cause (aiokafka's own log line
    of the failed bootstrap may come before it)."""
    refusal = REFUSALS[case](servers)
    for name, value in _environment(refusal).items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    status = await asyncio.to_thread(cli.main, list(command))
    err = capsys.readouterr().err
    last = err.splitlines()[-1] + "\n" if err else ""
    _assert_refused(status, last, refusal, servers)
    assert "Traceback" not in err
    assert [secret for secret in servers.secrets() if secret in err] == []


REDIS_REFUSALS = {name: case for name, case in REFUSALS.items() if name.startswith("redis-")}


@pytest.mark.parametrize("case", REDIS_REFUSALS.values(), ids=REDIS_REFUSALS.keys())
async def test_an_operator_command_names_a_refused_redis_connection(
    case: Callable[[Servers], Refusal],
    servers: Servers,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`purge` by hand, the operator command that goes to Redis first: the refusal as `run`
    names it, not an outage."""
    refusal = case(servers)
    for name, value in _environment(refusal).items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    command = ["purge", "--region", "eu", "company_orders", "company_id=c-refused", "--yes"]
    status = await asyncio.to_thread(cli.main, command)
    _assert_refused(status, capsys.readouterr().err, refusal, servers)


INDEXED_CATALOGUE = Catalogue(
    [
        Namespace(
            name="refusal_dry_run",
            template="refusal-dry-run:{id}",
            owner="tests",
            description="an index-strategy namespace: a dry run counts its index in Redis",
            purged_by=(PurgeRule(OrderCreated, {"id": "payload.order_id"}),),
            strategy=PurgeStrategy.INDEX,
        )
    ]
)
"""The catalogue of the dry-run test (`--catalogue tests.integration.test_tls_refusals:...`)."""


@pytest.mark.parametrize("case", ["redis-unknown-ca", "redis-wrong-password"])
async def test_a_dry_run_replay_names_a_refused_redis_connection(
    case: str,
    servers: Servers,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`replay --dry-run` counts an index namespace's keys in Redis: that read's failure escapes
    the command, and `invalidator` names the refusal behind it rather than an outage."""
    refusal = REFUSALS[case](servers)
    company = f"c-{uuid.uuid4().hex[:8]}"
    async with EventPublisher(
        servers.kafka.connection("publisher", tls=servers.tls), source="orders-api"
    ) as publisher:
        await publisher.publish(
            OrderCreated(order_id=f"o-{company}", company_id=company, total_cents=1),
            tenant="acme",
            aggregate_version=1,
        )
    for name, value in _environment(refusal).items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    command = [
        *("replay", "--region", "eu", "--topic", ORDERS, "--from", "10m", "--dry-run"),
        *("--catalogue", f"{__name__}:INDEXED_CATALOGUE"),
    ]
    status = await asyncio.to_thread(cli.main, command)
    _assert_refused(status, capsys.readouterr().err, refusal, servers)
