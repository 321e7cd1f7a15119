"""HTTP requests to the endpoints (/metrics, /healthz, /readyz) a running process serves."""

from __future__ import annotations

import asyncio


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
