"""HTTP requests to the endpoints (/metrics, /healthz, /readyz) a running process serves."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from invalidator import Invalidator

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""Scraped metrics: (sample name, labels) -> value."""


async def http_get(address: tuple[str, int] | None, path: str) -> tuple[int, str]:
    """GET `path` from the endpoints of an invalidator or the watchdog: (status, body)."""
    assert address is not None, "no endpoints are served"
    reader, writer = await asyncio.open_connection(*address)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    await writer.drain()
    response = (await asyncio.wait_for(reader.read(), timeout=10)).decode()
    writer.close()
    head, _, body = response.partition("\r\n\r\n")
    return int(head.split(" ", 2)[1]), body


async def scrape(invalidator: Invalidator) -> Samples:
    """The /metrics of a running invalidator (metrics_port set) as (sample name, labels) ->
    value."""
    status, body = await http_get(invalidator.metrics_address, "/metrics")
    assert status == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)
