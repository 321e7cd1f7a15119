"""Per-event accounting for fault tests, and the outcome table `make faults` prints.

Every fault test ends the same way: each published event id must be purged in every region
(its namespace has a generation token) or be on the dead-letter topic; nothing else is allowed.
`account()` says which ids are lost; `record_outcome()` appends the scenario's line
(events, lost, dead-lettered, time to recover) to the outcomes file.

Sizes: `scaled(short, long)` is the short size in `make test` and the long one in `make faults`
(INVALIDATOR_FAULTS=long).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from contracts import KafkaConnection
from contracts.events import HEADER_EVENT_ID
from contracts.layout import generation_key
from contracts.namespaces import BoundNamespace
from invalidator.deadletter import HEADER_GROUP, HEADER_REASON
from invalidator.operators import log_bounds
from producers import RedisClient
from tests.integration.kafka_tools import records_to_end
from tests.waiting import wait_until

LONG = os.environ.get("INVALIDATOR_FAULTS", "short") == "long"
OUTCOMES = Path(os.environ.get("INVALIDATOR_FAULTS_OUTCOMES", ".faults/outcomes.jsonl"))


def scaled(short: int, long: int) -> int:
    """`long` under `make faults`, `short` in `make test`."""
    return long if LONG else short


@dataclass(frozen=True)
class Accounting:
    """Where each published event ended up."""

    published: int
    purged: dict[str, int]
    """Region -> how many published events have a generation token there."""
    dead_lettered: int
    lost: dict[str, list[str]]
    """Region -> the ids neither purged there nor dead-lettered (must be empty)."""

    @property
    def lost_events(self) -> int:
        """How many events are lost in at least one region (each counted once)."""
        return len({event_id for ids in self.lost.values() for event_id in ids})

    def outcome(self, scenario: str, recover_s: float | None, *, note: str = "") -> Outcome:
        """The scenario's line of the fault table, from this accounting."""
        return Outcome(
            scenario, self.published, self.lost_events, self.dead_lettered, recover_s, note=note
        )

    def assert_nothing_lost(self) -> None:
        """Fail naming a few lost ids per region."""
        problems = {region: ids[:5] for region, ids in self.lost.items() if ids}
        assert not problems, f"lost events (neither purged nor dead-lettered): {problems}"


async def account(
    published: Mapping[str, BoundNamespace],
    regions: Mapping[str, RedisClient],
    *,
    dead_lettered: set[str] = frozenset(),  # type: ignore[assignment]
) -> Accounting:
    """Check every published event id in every region.

    published: event id -> the namespace its event purges (one whose generation key proves it).
    regions: region -> a client of that region's Redis.
    dead_lettered: the ids found on the dead-letter topic (`dead_lettered_ids`).
    """
    purged: dict[str, int] = {}
    lost: dict[str, list[str]] = {}
    for region, client in regions.items():
        keys = [generation_key(namespace) for namespace in published.values()]
        values: list[object] = []
        for start in range(0, len(keys), 1000):
            pipe = client.pipeline(transaction=False)
            for key in keys[start : start + 1000]:
                pipe.exists(key)
            values.extend(await pipe.execute())
        present = {event_id for event_id, value in zip(published, values, strict=True) if value}
        purged[region] = len(present)
        lost[region] = [e for e in published if e not in present and e not in dead_lettered]
    return Accounting(len(published), purged, len(dead_lettered & set(published)), lost)


async def settled(
    published: Mapping[str, BoundNamespace],
    regions: Mapping[str, RedisClient],
    *,
    since: float,
    within: float,
) -> tuple[Accounting, float | None]:
    """Wait until every event of `published` is purged in every region, for up to `within`
    seconds; the accounting then, and the seconds from `since` (monotonic) until every event
    was purged, or None when some never was (the accounting names them)."""

    async def purged_everywhere() -> bool:
        return not (await account(published, regions)).lost_events

    recover_s: float | None = None
    with contextlib.suppress(AssertionError):  # the accounting names what is missing
        await wait_until(purged_everywhere, within=within, what="every event purged", interval=0.2)
        recover_s = time.monotonic() - since
    return await account(published, regions), recover_s


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter of a published event, as the dead-letter topic holds it."""

    event_id: str
    """Its `event-id` header."""
    group: str
    """The consumer group that rejected it (`dlq-group`)."""
    reason: str
    """Why (`dlq-reason`)."""


async def dead_letters(
    kafka: KafkaConnection, topic: str, *, within_s: float = 10.0
) -> list[DeadLetter]:
    """The dead letters on `topic` that carry an `event-id` header, in the topic's order.

    Reads the whole topic up to the end it had when called.
    """
    starts = {tp: start for tp, (start, _) in (await log_bounds(kafka, [topic])).items()}
    letters = []
    for record in await records_to_end(kafka, starts, within_s=within_s):
        headers = dict(record.headers or ())
        if HEADER_EVENT_ID in headers:
            letters.append(
                DeadLetter(
                    headers[HEADER_EVENT_ID].decode(),
                    headers.get(HEADER_GROUP, b"").decode(),
                    headers.get(HEADER_REASON, b"").decode(),
                )
            )
    return letters


async def dead_lettered_ids(
    kafka: KafkaConnection, topic: str, *, group: str | None = None, within_s: float = 10.0
) -> set[str]:
    """The event ids (`event-id` header) on the dead-letter topic, of `group` when given.

    Reads the whole topic up to the end it had when called.
    """
    letters = await dead_letters(kafka, topic, within_s=within_s)
    return {letter.event_id for letter in letters if group is None or letter.group == group}


@dataclass(frozen=True)
class Outcome:
    """One line of the fault table."""

    scenario: str
    events: int
    lost: int
    dead_lettered: int
    recover_s: float | None
    """From the fault's end to every region caught up (None when not meaningful)."""
    long: bool = LONG
    note: str = ""
    """What else the scenario measured (e.g. duplicates), shown after its name in the table."""


def record_outcome(outcome: Outcome) -> None:
    """Append the scenario's line to the outcomes file (`make faults` prints them as a table)."""
    OUTCOMES.parent.mkdir(parents=True, exist_ok=True)
    with OUTCOMES.open("a") as file:
        file.write(json.dumps(asdict(outcome)) + "\n")


def table(path: Path = OUTCOMES) -> str:
    """The outcomes file as a markdown table (last line per scenario)."""
    latest: dict[str, dict[str, object]] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        latest[str(row["scenario"])] = row
    lines = [
        "| scenario | events | lost | dead-lettered | time to recover |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in latest.values():
        recover = row["recover_s"]
        shown = "-" if recover is None else f"{float(recover):.1f} s"  # type: ignore[arg-type]
        note = f" ({row['note']})" if row.get("note") else ""
        lines.append(
            f"| {row['scenario']}{note} | {row['events']} | {row['lost']} | {row['dead_lettered']}"
            f" | {shown} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
