"""deploy/local/link_proxy.py, the link between the mirrored topology's regions, run as its own
process (stdlib only: `python -S`, no site-packages) in front of an echo server of the test's:
it delays each direction, keeps byte order under jitter, cuts and heals."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from bench.link import Link, LinkError
from bench.stack import REPO
from tests.waiting import wait_until

LINK_PROXY = REPO / "deploy" / "local" / "link_proxy.py"
DELAY_MS = 40
# Above 2x the delay a round trip may take this long on a loaded 2-core host.
MARGIN_S = 0.150


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Proxy:
    """The running link: its route's port (in front of the echo server) and its control."""

    port: int
    link: Link
    process: asyncio.subprocess.Process


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
    echo_port = echo.sockets[0].getsockname()[1]
    port, control = _free_port(), _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-S",
        str(LINK_PROXY),
        "--route",
        f"{port}:127.0.0.1:{echo_port}",
        "--control-port",
        str(control),
        "--delay-ms",
        str(DELAY_MS),
    )
    link = Link("127.0.0.1", control, timeout_s=2)

    async def answers() -> bool:
        assert process.returncode is None, f"the link proxy exited ({process.returncode})"
        try:
            await link.status()
        except LinkError:
            return False
        return True

    try:
        await wait_until(answers, within=20, what="the link proxy's control port")
        yield Proxy(port, link, process)
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
        echo.close()
        await echo.wait_closed()


async def _round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> float:
    started = time.monotonic()
    writer.write(b"x")
    await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(1), 5) == b"x"
    return time.monotonic() - started


async def test_a_round_trip_takes_the_delay_each_way(proxy: Proxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        trips = [await _round_trip(reader, writer) for _ in range(10)]
    finally:
        writer.close()
    assert min(trips) >= 2 * DELAY_MS / 1000, trips
    assert statistics.median(trips) < 2 * DELAY_MS / 1000 + MARGIN_S, trips

    await proxy.link.set_delay(0)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        fast = [await _round_trip(reader, writer) for _ in range(10)]
    finally:
        writer.close()
    assert statistics.median(fast) < MARGIN_S, fast
    status = await proxy.link.status()
    assert (status.delay_ms, status.jitter_ms, status.cut) == (0, 0, False)
    assert status.bytes_forwarded >= 2 * 20


async def test_jitter_keeps_the_byte_order_of_a_connection(proxy: Proxy) -> None:
    await proxy.link.set_delay(5, jitter_ms=5)
    assert (await proxy.link.status()).jitter_ms == 5
    chunks = [f"{i:05d}:".encode() + bytes([65 + i % 26]) * 90 for i in range(2000)]
    sent = b"".join(chunks)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)

    async def write_all() -> None:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()

    try:
        writing = asyncio.create_task(write_all())
        received = await asyncio.wait_for(reader.readexactly(len(sent)), 60)
        await writing
    finally:
        writer.close()
    assert received == sent


async def test_cut_drops_connections_and_refuses_new_ones_until_healed(proxy: Proxy) -> None:
    await proxy.link.set_delay(0)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    await _round_trip(reader, writer)

    async def one_open() -> bool:
        return (await proxy.link.status()).connections == 1

    await wait_until(one_open, within=10, what="the connection counted by the link")

    await proxy.link.cut()
    try:
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(reader.read(1), 10) == b""
    finally:
        writer.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", proxy.port)
    status = await proxy.link.status()
    assert status.cut
    assert status.connections == 0

    await proxy.link.heal()
    assert not (await proxy.link.status()).cut
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        await _round_trip(reader, writer)
    finally:
        writer.close()


async def test_a_bad_command_is_answered_with_an_error(proxy: Proxy) -> None:
    with pytest.raises(LinkError, match="unknown command"):
        await proxy.link.command("bogus")
    with pytest.raises(LinkError, match="usage: delay"):
        await proxy.link.command("delay -1")
    assert (await proxy.link.status()).delay_ms == DELAY_MS
