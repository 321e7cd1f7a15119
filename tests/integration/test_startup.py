"""Start-up failures a newcomer meets: one clear message and the documented exit status."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import uuid
from typing import Any, ClassVar

import pytest

from contracts import Catalogue, DomainEvent, Namespace, PurgeRule, SafeId
from invalidator import Invalidator, InvalidatorSettings
from invalidator.operators import EXIT_INPUT, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE
from invalidator.operators._topics_commands import run_topics_command
from tests.integration.cli import run_cli
from tests.integration.missing_topic_catalogue import TOPIC as MISSING_TOPIC
from tests.integration.redis_server import free_port


def _invalidator(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env)


def test_a_missing_topic_stops_start_up_with_one_message(stack_env: dict[str, str]) -> None:
    result = _invalidator(
        "run",
        "--region",
        "eu",
        "--catalogue",
        "tests.integration.missing_topic_catalogue:CATALOGUE",
    )
    assert result.returncode == EXIT_INPUT, result.stderr
    assert MISSING_TOPIC in result.stderr
    assert "invalidator topics create" in result.stderr
    assert "Traceback" not in result.stderr
    assert "not found in cluster metadata" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("run", "--region", "eu"),
        ("offsets", "show"),
        ("replay", "--region", "eu", "--from", "1h"),
    ],
    ids=" ".join,
)
def test_an_unreachable_broker_is_exit_3_without_a_traceback(
    stack_env: dict[str, str], command: tuple[str, ...]
) -> None:
    result = _invalidator(*command, INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    assert result.returncode == EXIT_UNAVAILABLE, result.stderr
    assert "a service cannot be reached" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Unclosed" not in result.stderr


async def test_a_failed_start_closes_every_kafka_client(settings: InvalidatorSettings) -> None:
    unreachable = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={"bootstrap_servers": f"127.0.0.1:{free_port()}"}
            )
        }
    )
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        invalidator = Invalidator(unreachable, region="eu")
        try:
            await invalidator.run()
        except Exception as error:
            assert "bootstrap" in str(error)
        else:
            raise AssertionError("run() started against a closed port")
        del invalidator
        gc.collect()
    finally:
        loop.set_exception_handler(previous)
    assert [c["message"] for c in reported if "Unclosed" in c.get("message", "")] == []


async def test_topics_create_makes_what_check_reports_missing(
    settings: InvalidatorSettings, capsys: Any
) -> None:
    topic_name = f"startup-test.{uuid.uuid4().hex[:8]}"

    class PageViewed(DomainEvent):
        event_type: ClassVar[str] = "startup.PageViewed"
        aggregate_type: ClassVar[str] = "page"
        aggregate_id_field: ClassVar[str] = "page_id"
        topic: ClassVar[str] = topic_name

        page_id: SafeId

    catalogue = Catalogue(
        [
            Namespace(
                name="page",
                template="page:{page_id}",
                owner="tests",
                description="A page.",
                purged_by=(PurgeRule(PageViewed, {"page_id": "payload.page_id"}),),
            )
        ]
    )

    def args(action: str, **more: object) -> argparse.Namespace:
        return argparse.Namespace(action=action, json=True, **more)

    def status() -> dict[str, str]:
        return {
            row["topic"]: row["status"] for row in json.loads(capsys.readouterr().out)["topics"]
        }

    assert await run_topics_command(args("check"), settings, catalogue) == EXIT_REFUSED
    assert status()[topic_name] == "missing"
    created = args("create", partitions=2, replication_factor=1)
    assert await run_topics_command(created, settings, catalogue) == EXIT_OK
    assert status() == {topic_name: "created", settings.dead_letter_topic: "ok"}
    assert await run_topics_command(args("check"), settings, catalogue) == EXIT_OK
    assert status() == {topic_name: "ok", settings.dead_letter_topic: "ok"}
