"""A TCP proxy that can cut a link and restore it: network faults without netem or toxiproxy."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlparse

from contracts import RedisTarget
from invalidator import InvalidatorSettings


class TcpProxy:
    """Forwards 127.0.0.1:<port> to an upstream address until cut."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        """upstream_host, upstream_port: where the traffic really goes."""
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen (on a free port the first time, on the same port after a cut)."""
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def restore(self) -> None:
        """Accept connections again."""
        await self.start()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()


async def region_through_proxy(
    settings: InvalidatorSettings, region: str
) -> tuple[TcpProxy, InvalidatorSettings]:
    """A started proxy in front of `region`'s first Redis target, and settings whose `region`
    purges through it (socket timeout 0.5 s, retries backing off from 0.05 s to 0.5 s)."""
    upstream = urlparse(settings.targets(region)[0].url)
    proxy = TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 6379)
    await proxy.start()
    proxied = RedisTarget(
        name=f"{region}-via-proxy", url=f"redis://127.0.0.1:{proxy.port}/0", socket_timeout_s=0.5
    )
    proxied_settings = settings.model_copy(
        update={
            "regions": {**settings.regions, region: [proxied]},
            "retry_initial_s": 0.05,
            "retry_max_s": 0.5,
        }
    )
    return proxy, proxied_settings
