"""Group calls retry while the coordinator starts, and give up at a deadline naming the group."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    GroupLoadInProgressError,
    NotCoordinatorForGroupError,
    UnknownTopicOrPartitionError,
)

from contracts import kafka_clients
from contracts.connections import KafkaConnection
from invalidator.operators import _offsets as offsets
from invalidator.operators._coordinator import (
    CoordinatorUnavailableError,
    until_coordinator_answers,
)


class Flaky:
    """Fails with each of `errors` in turn, then returns `result`."""

    def __init__(self, errors: list[Exception], result: object = "ok") -> None:
        self.errors = list(errors)
        self.result = result
        self.calls = 0

    async def __call__(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


async def test_retries_every_coordinator_error_then_returns() -> None:
    errors = [GroupCoordinatorNotAvailableError(), NotCoordinatorForGroupError()]
    flaky = Flaky([*errors, GroupLoadInProgressError()])
    result = await until_coordinator_answers(flaky, group_id="g", first_delay_s=0.001)
    assert (result, flaky.calls) == ("ok", 4)


async def test_other_errors_are_not_retried() -> None:
    flaky = Flaky([UnknownTopicOrPartitionError()])
    with pytest.raises(UnknownTopicOrPartitionError):
        await until_coordinator_answers(flaky, group_id="g", first_delay_s=0.001)
    assert flaky.calls == 1


async def test_gives_up_at_the_deadline_naming_the_group() -> None:
    never = Flaky([GroupCoordinatorNotAvailableError()] * 10_000)
    with pytest.raises(CoordinatorUnavailableError, match=r"group invalidator\.eu within"):
        await until_coordinator_answers(
            never, group_id="invalidator.eu", deadline_s=0.05, first_delay_s=0.001
        )


async def test_a_call_that_hangs_is_cut_at_the_deadline() -> None:
    # aiokafka's consumer commit waits for a coordinator forever on its own.
    async def hangs() -> None:
        await asyncio.Event().wait()

    with pytest.raises(CoordinatorUnavailableError, match="no answer"):
        await until_coordinator_answers(hangs, group_id="g", deadline_s=0.05)


class FakeAdmin:
    """An admin client whose coordinator is not ready for the first two calls of each kind."""

    def __init__(self, **_: object) -> None:
        not_ready = [GroupCoordinatorNotAvailableError(), NotCoordinatorForGroupError()]
        self.list_consumer_groups = Flaky(list(not_ready), [("invalidator.eu", "consumer")])
        self.find_coordinator = Flaky(list(not_ready), 1)
        self.describe = Flaky(list(not_ready))

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def _send_request(self, request: object, node_id: int) -> Any:
        topics = [("orders.events", [(0, 42, "", 0), (1, -1, "", 0)])]
        return SimpleNamespace(error_code=0, topics=topics)

    async def describe_consumer_groups(self, group_ids: list[str]) -> list[Any]:
        await self.describe()

        class Response:
            def to_object(self) -> dict[str, Any]:
                return {"groups": [{"error_code": 0, "state": "Empty", "members": []}]}

        return [Response()]


async def test_operator_group_calls_wait_for_the_coordinator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka_clients, "AIOKafkaAdminClient", FakeAdmin)
    kafka = KafkaConnection(bootstrap_servers="127.0.0.1:1")
    assert await offsets.group_exists(kafka, "invalidator.eu")
    assert (await offsets.group_state(kafka, "invalidator.eu")).state == "Empty"
    committed = await offsets.committed_offsets(kafka, "invalidator.eu")
    assert committed == {TopicPartition("orders.events", 0): 42}


async def test_a_coordinator_still_loading_is_not_read_as_never_committed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Loading(FakeAdmin):
        async def _send_request(self, request: object, node_id: int) -> Any:
            return SimpleNamespace(error_code=GroupLoadInProgressError.errno, topics=[])

    monkeypatch.setattr(kafka_clients, "AIOKafkaAdminClient", Loading)
    monkeypatch.setattr("invalidator.operators._coordinator.COORDINATOR_DEADLINE_S", 0.05)
    with pytest.raises(CoordinatorUnavailableError):
        await offsets.committed_offsets(KafkaConnection(), "invalidator.eu")
