"""CacheClient's `max_in_flight`: no more commands at once than that, places handed on in arrival
order, and a caller cancelled while it waits never takes a place with it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from contracts.example_orders import COMPANY_ORDERS
from contracts.layout import encode_entry
from producers import CacheClient, RedisClient
from tests.waiting import wait_until

GENERATION = b"0000000000000001aaaaaaaaaaaaaaaa"
VALUE = b'["o-1"]'
NAMESPACE = COMPANY_ORDERS.bind(company_id="42")


class GatedRedis:
    """A stand-in for redis-py whose MGETs (the only command a hit sends) answer only when the
    test opens their gate."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most_in_flight = 0
        self.started: list[asyncio.Event] = []
        self.gates: list[asyncio.Event] = []
        self.on_answer: Callable[[], object] | None = None
        """Called once, by the next MGET whose gate opens, just before it answers."""

    def register_script(self, script: str) -> None:
        return None

    async def execute_command(self, command: str, *keys: str, **options: object) -> list[bytes]:
        assert command == "MGET", f"a read sent {command}"
        started, gate = asyncio.Event(), asyncio.Event()
        self.started.append(started)
        self.gates.append(gate)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        started.set()
        try:
            await gate.wait()
        finally:
            self.in_flight -= 1
        if self.on_answer is not None:
            on_answer, self.on_answer = self.on_answer, None
            on_answer()
        return [GENERATION, encode_entry(GENERATION, 1, VALUE)]


async def _load() -> bytes:
    raise AssertionError("every read is a hit")


def _cache(redis: GatedRedis, max_in_flight: int) -> CacheClient:
    return CacheClient(cast(RedisClient, redis), max_in_flight=max_in_flight)


async def _until_started(redis: GatedRedis, count: int) -> None:
    async def started() -> bool:
        return len(redis.started) >= count

    await wait_until(started, within=5, what=f"{count} MGETs sent", interval=0)


async def test_no_more_commands_at_once_than_max_in_flight() -> None:
    redis = GatedRedis()
    cache = _cache(redis, max_in_flight=3)
    reads = [asyncio.create_task(cache.fetch(NAMESPACE, "page:1", _load)) for _ in range(10)]
    await _until_started(redis, 3)
    for _ in range(20):
        await asyncio.sleep(0)
    assert redis.in_flight == 3 and len(redis.started) == 3  # the other seven wait

    for position in range(10):
        await _until_started(redis, position + 1)
        redis.gates[position].set()
    async with asyncio.timeout(5):
        fetched = await asyncio.gather(*reads)
    assert [f.value for f in fetched] == [VALUE] * 10
    assert redis.most_in_flight == 3


async def test_a_caller_cancelled_while_waiting_takes_no_place_with_it() -> None:
    redis = GatedRedis()
    cache = _cache(redis, max_in_flight=1)
    first = asyncio.create_task(cache.fetch(NAMESPACE, "page:1", _load))
    await _until_started(redis, 1)
    cancelled = asyncio.create_task(cache.fetch(NAMESPACE, "page:1", _load))
    last = asyncio.create_task(cache.fetch(NAMESPACE, "page:1", _load))
    await asyncio.sleep(0)
    cancelled.cancel()
    redis.gates[0].set()
    await _until_started(redis, 2)
    redis.gates[1].set()
    async with asyncio.timeout(5):
        assert (await first).value == VALUE and (await last).value == VALUE
    assert cancelled.cancelled() and redis.most_in_flight == 1
    await _one_more_read_gets_through(cache, redis)


async def test_a_caller_cancelled_as_it_is_handed_a_place_passes_it_on() -> None:
    redis = GatedRedis()
    cache = _cache(redis, max_in_flight=1)
    first = asyncio.create_task(cache.fetch(NAMESPACE, "page:1", _load))
    await _until_started(redis, 1)
    handed = asyncio.create_task(cache.fetch(NAMESPACE, "page:1", _load))
    last = asyncio.create_task(cache.fetch(NAMESPACE, "page:1", _load))
    await asyncio.sleep(0)
    # Queued as the first read answers, before it ends and hands its place to `handed`: the
    # cancellation lands after the place was handed over, before `handed` runs again.
    redis.on_answer = lambda: asyncio.get_running_loop().call_soon(handed.cancel)
    redis.gates[0].set()
    await _until_started(redis, 2)
    redis.gates[1].set()
    async with asyncio.timeout(5):
        assert (await first).value == VALUE and (await last).value == VALUE
    assert handed.cancelled() and redis.most_in_flight == 1
    await _one_more_read_gets_through(cache, redis)


async def _one_more_read_gets_through(cache: CacheClient, redis: GatedRedis) -> None:
    """The place is free again: a new read is not left waiting for one that was lost."""
    read = asyncio.create_task(cache.fetch(NAMESPACE, "page:1", _load))
    await _until_started(redis, len(redis.gates) + 1)
    redis.gates[-1].set()
    async with asyncio.timeout(5):
        assert (await read).value == VALUE
