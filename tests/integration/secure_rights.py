"""A principal's rights on the secure profile changed by its `admin`, as an operator would: Kafka
ACLs with AclCommand, Redis ACL users with `ACL SETUSER` on every server of a region (a Cluster's
replicas included, so that a failover finds the same rights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeGuard

from redis.asyncio import Redis, RedisCluster

from contracts import KafkaConnection, RedisTarget
from contracts.redis_clients import redis_client, redis_node_client
from tests.faults.kafka_server import kafka_jvm, kafka_libs, run_kafka_tool
from tests.integration.secure_profile import SecureProfile

ADMIN = "admin"
"""The setup-only user of each secure service (Kafka super user, Redis `+@all`)."""


def secure_directory(secure: SecureProfile) -> Path:
    """The profile's directory (`$STACK_DIR/secure`: certs/, secrets/, kafka/, logs/)."""
    return secure.ca_file.parent.parent


def kafka_admin(secure: SecureProfile) -> KafkaConnection:
    """The Kafka login of `admin` (a super user: sees and may do everything)."""
    return secure.invalidator_kafka.model_copy(
        update={"sasl_username": ADMIN, "sasl_password": secure.password("kafka-admin")}
    )


async def change_kafka_acls(secure: SecureProfile, *acl: str) -> None:
    """Run AclCommand as `admin` with `acl` (e.g. `--add`, then `topic_write_acl(...)`), with the
    client config `stack.sh up --secure` wrote for its own ACL calls."""
    directory = secure_directory(secure)
    await run_kafka_tool(
        kafka_jvm(
            kafka_libs(),
            directory / "logs" / "kafka-tools.log",
            "org.apache.kafka.tools.AclCommand",
            *("--bootstrap-server", secure.invalidator_kafka.bootstrap_servers),
            *("--command-config", str(directory / "kafka" / "admin.properties")),
            *acl,
        )
    )


def redis_admin_target(secure: SecureProfile, region: str) -> RedisTarget:
    """`region`'s first Redis target, logged in as `admin`."""
    login = {"username": ADMIN, "password": secure.password("redis-admin")}
    return secure.invalidator_regions[region][0].model_copy(update=login)


async def redis_servers(target: RedisTarget) -> list[tuple[str, int]]:
    """Every server of `target`: the one of its URL, or each node of its Cluster, masters and
    replicas."""
    client = redis_client(target)
    try:
        if not target.cluster:
            assert isinstance(client, Redis)
            kwargs = client.connection_pool.connection_kwargs
            return [(str(kwargs["host"]), int(kwargs["port"]))]
        assert isinstance(client, RedisCluster)
        await client.initialize()
        return sorted((node.host, int(node.port)) for node in client.get_nodes())
    finally:
        await client.aclose()


async def set_redis_user(secure: SecureProfile, region: str, user: str, *rules: str) -> None:
    """`ACL SETUSER user rules...` on every server of `region` (e.g. `-eval`, `+eval`)."""
    admin = redis_admin_target(secure, region)
    for host, port in await redis_servers(admin):
        client = redis_node_client(admin, host, port)
        try:
            await client.acl_setuser(user, enabled=True, commands=list(rules))
        finally:
            await client.aclose()


async def redis_user_rights(secure: SecureProfile, region: str, user: str) -> dict[str, Any]:
    """`user`'s rights on every server of `region` (`ACL GETUSER` without the password
    hashes, each list sorted, so that the same rights compare equal whatever order they were
    granted in): server address -> flags, commands, keys, channels, selectors."""
    admin = redis_admin_target(secure, region)
    rights: dict[str, Any] = {}
    for host, port in await redis_servers(admin):
        client = redis_node_client(admin, host, port)
        try:
            described = await client.acl_getuser(user)
        finally:
            await client.aclose()
        assert described, f"no Redis user {user} on {host}:{port}"
        rights[f"{host}:{port}"] = {
            name: sorted(value) if _strings(value) else value
            for name, value in described.items()
            if name != "passwords"
        }
    return rights


def _strings(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
