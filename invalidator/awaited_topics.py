"""Topics a consumer must read that do not exist yet (mirrored topics MirrorMaker has not
created): subscribed to once the cluster has them.

A consumer is never subscribed to an absent topic: its metadata request would create the topic
on a broker with `auto.create.topics.enable`, with the broker's defaults instead of MirrorMaker's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)

POLL_S = 2.0
"""How often a consumer waiting for topics looks whether they exist yet."""


class Subscriber(Protocol):
    """What of a group consumer this needs (aiokafka's, or the invalidator's `GroupConsumer`)."""

    async def topics(self) -> set[str]:
        """Every topic of the cluster."""
        ...

    def subscribe(self, *, topics: Sequence[str], listener: Any) -> None:
        """Subscribe to `topics` (the whole list: it replaces the last one)."""
        ...


async def subscribe_when_present(
    consumer: Subscriber, wanted: Sequence[str], absent: set[str], *, name: str, listener: Any
) -> None:
    """Subscribe `consumer` to each of `absent` once the cluster has it, looked up every
    `POLL_S`: the group then rebalances to take its partitions on. Returns when none is absent.

    wanted: every topic the consumer reads, `absent` ones included (the subscription's order).
    name: the consumer as the log lines name it, e.g. `invalidator invalidator.us`.
    listener: the rebalance listener the consumer was subscribed with (None for none).
    """
    absent = set(absent)
    log.warning(
        "%s: waiting for topic(s) %s, which do not exist yet (MirrorMaker creates a mirrored"
        " topic once it runs and its source topic exists); consuming the others meanwhile",
        name,
        ",".join(sorted(absent)),
    )
    while absent:
        await asyncio.sleep(POLL_S)  # a polling period, not a wait for work
        try:
            present = await consumer.topics()
        except KafkaError as error:
            log.warning("%s: listing topics failed: %s", name, error)
            continue
        appeared = absent & present
        if not appeared:
            continue
        absent -= appeared
        consumer.subscribe(topics=[t for t in wanted if t not in absent], listener=listener)
        log.info(
            "%s: topic(s) %s appeared; consuming them%s",
            name,
            ",".join(sorted(appeared)),
            f" (still waiting for {','.join(sorted(absent))})" if absent else "",
        )
