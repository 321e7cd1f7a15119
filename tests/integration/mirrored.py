"""The local stack's mirrored topology for tests: a Kafka cluster per region, MirrorMaker 2 between
them through the link (`stack.sh up --mirrored`), and each region's invalidator settings on its
own cluster."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition

from bench.link import Link
from bench.stack import MIRROR_VARIABLES, start_mirrored_stack
from contracts import KafkaConnection
from contracts.events import HEADER_EVENT_ID
from contracts.topics import mirrored_topic
from invalidator import InvalidatorSettings
from invalidator.operators import log_bounds
from tests.integration.kafka_tools import records_to_end

MIRRORED_REGIONS = ("eu", "us")
"""The regions of the mirrored topology, each with its own cluster."""
DEFAULT_LINK_DELAY_MS = 40.0
"""The link's one-way delay as `stack.sh up --mirrored` starts it (MIRROR_LINK_DELAY_MS)."""


@dataclass(frozen=True)
class MirroredStack:
    """Each region's cluster and the link between them."""

    clusters: dict[str, KafkaConnection]
    """Region -> its own cluster (its writers publish there, its invalidator reads there)."""
    link: Link
    """The link proxy MirrorMaker reads the other region's cluster through."""

    @classmethod
    def from_endpoints(cls, endpoints: Mapping[str, str]) -> MirroredStack:
        """From the MIRROR_* variables `stack.sh up --mirrored` prints."""
        return cls(
            clusters={
                region: KafkaConnection(
                    bootstrap_servers=endpoints[f"MIRROR_KAFKA_{region.upper()}"]
                )
                for region in MIRRORED_REGIONS
            },
            link=Link.from_env(endpoints["MIRROR_LINK_CONTROL"]),
        )

    def settings(self, base: InvalidatorSettings, region: str) -> InvalidatorSettings:
        """`base` (its Redis regions, its group prefix) for `region`'s invalidator on the
        region's own cluster, reading the other region's topics as MirrorMaker mirrors them."""
        return base.model_copy(
            update={"kafka": self.clusters[region], "mirrored_from": [other_region(region)]}
        )

    async def restore_link(self) -> None:
        """Heal the link and set its default delay (a test's cleanup, however it ended)."""
        await self.link.heal()
        await self.link.set_delay(DEFAULT_LINK_DELAY_MS)


def mirrored_stack_endpoints() -> dict[str, str]:
    """The MIRROR_* variables from the environment when all are given, else from
    `stack.sh up --mirrored` (which starts what is down; a StackUnavailableError when it
    cannot: the tests fail, never skip)."""
    given = {name: os.environ[name] for name in MIRROR_VARIABLES if os.environ.get(name)}
    if len(given) == len(MIRROR_VARIABLES):
        return given
    started = start_mirrored_stack()
    return {name: started[name] for name in MIRROR_VARIABLES}


def other_region(region: str) -> str:
    """The region whose topics are mirrored into `region`'s cluster."""
    (other,) = (r for r in MIRRORED_REGIONS if r != region)
    return other


def mirror_environment(settings: InvalidatorSettings) -> dict[str, str]:
    """The variables an invalidator process or an operator command needs besides the group
    prefix to run as `settings` says on the mirrored topology."""
    return {
        "INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "INVALIDATOR_MIRRORED_FROM": json.dumps(settings.mirrored_from),
    }


async def log_ends(kafka: KafkaConnection, topics: list[str]) -> dict[TopicPartition, int]:
    """The log end of every partition of `topics`: where to read the records published next."""
    return {tp: end for tp, (_, end) in (await log_bounds(kafka, topics)).items()}


async def records_by_event_id(
    kafka: KafkaConnection, start: dict[TopicPartition, int], *, within_s: float = 60.0
) -> dict[str, list[Any]]:
    """Event id (its header) -> every record carrying it, from `start` to the current log end."""
    found: dict[str, list[Any]] = {}
    for record in await records_to_end(kafka, start, within_s=within_s):
        event_id = dict(record.headers or ()).get(HEADER_EVENT_ID)
        if event_id is not None:
            found.setdefault(event_id.decode(), []).append(record)
    return found


def mirrored_topics_of(source: str, topics: list[str]) -> list[str]:
    """`topics` of region `source` as MirrorMaker names them on the other region's cluster."""
    return [mirrored_topic(source, topic) for topic in topics]
