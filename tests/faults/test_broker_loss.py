"""A broker lost for good in a 3-broker cluster while a service publishes and both regions drain.

The cluster is `stack.sh up --brokers 3 --kafka-only` (replication factor 3 everywhere,
min.insync.replicas=2) in a STACK_DIR of its own, on the six ports after the single broker's
(KAFKA_PORT + 2, + 4, + 6 and KAFKA_CONTROLLER_PORT + 2, + 4, + 6), so the stack the other tests
use is untouched; it is stopped at the end. One node is SIGKILLed mid-drain and never comes
back: with `acks=all` and idempotence (EventPublisher's producer) an acknowledged event is on
two replicas at least, so nothing acknowledged is lost, and publishing goes on with two nodes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator

import pytest

from bench.stack import STACK_SCRIPT, kafka_libs_dir, stack_dir, start_local_stack
from invalidator import InvalidatorSettings
from producers import EventPublisher, RedisClient
from tests.faults.outage import drain_through
from tests.faults.services import local_pid, process_gone
from tests.waiting import wait_until

BROKERS = 3
LOST_NODE = 1
"""The first bootstrap server too: clients must find the cluster through the others."""


@pytest.fixture
async def cluster(settings: InvalidatorSettings) -> AsyncIterator[InvalidatorSettings]:
    """The test's settings on a 3-broker cluster of its own, stopped afterwards."""
    base = stack_dir()
    env = {
        "STACK_DIR": str(base / "kafka-cluster"),
        "KAFKA_LIBS_DIR": str(kafka_libs_dir()),
        "KAFKA_PORT": str(int(os.environ.get("KAFKA_PORT", "19092")) + 2),
        "KAFKA_CONTROLLER_PORT": str(int(os.environ.get("KAFKA_CONTROLLER_PORT", "19093")) + 2),
    }
    started = time.monotonic()
    try:
        endpoints = await asyncio.to_thread(
            start_local_stack, "--brokers", str(BROKERS), "--kafka-only", env=env
        )
        print(f"3-broker cluster up in {time.monotonic() - started:.1f} s")
        kafka = settings.kafka.model_copy(
            update={"bootstrap_servers": endpoints["INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS"]}
        )
        yield settings.model_copy(update={"kafka": kafka})
    finally:
        await asyncio.to_thread(
            subprocess.run,
            ["bash", str(STACK_SCRIPT), "down"],
            env={**os.environ, **env},
            capture_output=True,
            timeout=180,
            check=False,
        )


@pytest.mark.long
async def test_broker_lost_for_good_in_a_cluster_loses_nothing(
    cluster: InvalidatorSettings,
    redis_clients: dict[str, RedisClient],
) -> None:
    pid_file = stack_dir() / "kafka-cluster" / "run" / f"kafka-{LOST_NODE}.pid"

    async def kill_a_broker() -> None:
        pid = local_pid(pid_file)
        assert pid is not None, f"no broker runs with the pid of {pid_file}"
        os.kill(pid, signal.SIGKILL)
        await wait_until(lambda: process_gone(pid), within=30, what="the killed broker to exit")

    async with EventPublisher(cluster.kafka, source="orders-api-test") as publisher:
        await drain_through(
            f"1 of {BROKERS} brokers SIGKILLed for good",
            kill_a_broker,
            cluster,
            publisher,
            redis_clients,
        )
