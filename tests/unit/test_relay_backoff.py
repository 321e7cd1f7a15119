"""While Kafka is away the relay backs off, and rows committed meanwhile do not cut the back-off
short: a service that keeps writing does not make it try again at every commit. Once Kafka takes
the rows again they are all published. (The outbox is a SQLite file; a stand-in producer fails
every send, then acknowledges.)"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.connections import KafkaConnection
from producers.outbox import OutboxRelay, create_outbox_table, sqlite_engine
from tests.relay_fakes import Acknowledging, published_ids, running, write_row
from tests.waiting import wait_until

_POLL_INTERVAL_S = 0.5
"""The relay's first back-off; it doubles after each failed attempt."""
_WRITING_S = 1.2
"""How long the service keeps committing rows while Kafka is away: attempts at 0 and 0.5 s
(the next at 1.5 s), where a relay woken by each commit tries hundreds of times."""


class KafkaAwayThenBack(Acknowledging):
    """Every send fails (the broker away) until `back` is set; each attempt is counted."""

    def __init__(self) -> None:
        super().__init__()
        self.back = False
        self.attempts = 0

    async def send_many(
        self, records: Sequence[tuple[str, bytes, bytes, list[tuple[str, bytes]]]]
    ) -> list[Any]:
        self.attempts += 1
        if not self.back:
            raise KafkaConnectionError("the broker is away")
        return await super().send_many(records)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    created = sqlite_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}", pool_size=2)
    await create_outbox_table(created)
    yield created
    await created.dispose()


async def test_commits_during_an_outage_do_not_cut_the_back_off_short(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = OutboxRelay(engine, KafkaConnection(), poll_interval_s=_POLL_INTERVAL_S)
    kafka = KafkaAwayThenBack()
    monkeypatch.setattr(relay, "_producer", kafka)
    async with running(relay):
        written = [await write_row(engine, "o-first", 1)]

        async def tried() -> bool:
            return kafka.attempts >= 1

        await wait_until(tried, within=5, what="the relay's first attempt")
        started = time.monotonic()
        while time.monotonic() - started < _WRITING_S:
            written.append(await write_row(engine, f"o-{len(written)}", 1))
        attempts = kafka.attempts
        assert len(written) > 20, "too few commits to tell"
        assert attempts <= 3, f"{attempts} attempts for {len(written)} commits in {_WRITING_S} s"
        kafka.back = True

        async def all_marked() -> bool:
            return await published_ids(engine) == set(written)

        await wait_until(all_marked, within=15, what="every row published once Kafka is back")
