"""A Kafka broker's round trip over one TCP connection: ApiVersions requests, one at a time.

Sent through the link proxy, it measures the link's round trip as a Kafka client pays it (both
one-way delays plus the broker's answer), with no client library's batching or retries in it.
"""

from __future__ import annotations

import asyncio
import struct
import time

API_VERSIONS = 18
CLIENT_ID = b"bench-ping"


def api_versions_request(correlation_id: int) -> bytes:
    """An ApiVersions v0 request (no body), size-prefixed as on the wire.

    correlation_id: echoed by the broker in its response.
    """
    header = struct.pack(">hhih", API_VERSIONS, 0, correlation_id, len(CLIENT_ID)) + CLIENT_ID
    return struct.pack(">i", len(header)) + header


def response_correlation_id(response: bytes) -> int:
    """The correlation id at the start of a response body (after its size prefix)."""
    correlation_id: int = struct.unpack_from(">i", response)[0]
    return correlation_id


async def round_trips_s(host: str, port: int, *, count: int, pause_s: float = 0.02) -> list[float]:
    """`count` request/response round trips to the broker at host:port, in seconds.

    host, port: a broker's listener (or a proxy in front of it).
    count: how many requests, each sent after the previous answer.
    pause_s: the pause between two requests.
    """
    reader, writer = await asyncio.open_connection(host, port)
    samples = []
    try:
        for correlation_id in range(1, count + 1):
            started = time.perf_counter()
            writer.write(api_versions_request(correlation_id))
            await writer.drain()
            (size,) = struct.unpack(">i", await reader.readexactly(4))
            response = await reader.readexactly(size)
            samples.append(time.perf_counter() - started)
            if response_correlation_id(response) != correlation_id:
                raise RuntimeError(f"{host}:{port} answered out of order")
            await asyncio.sleep(pause_s)
    finally:
        writer.close()
        await writer.wait_closed()
    return samples
