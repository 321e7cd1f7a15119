"""The invalidator's HTTP port: `/metrics`, `/healthz` and `/readyz`.

A minimal HTTP/1.1 server on the invalidator's own event loop (one request per connection),
so a probe reads the loop's state directly, with no thread and no lock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)


class Exposition(Protocol):
    """What /metrics serves (`InvalidatorMetrics`, the watchdog's `WatchMetrics` have it)."""

    def exposition(self) -> bytes:
        """The metrics in the text exposition format."""


class LoopHealth(Protocol):
    """What the probes read of the loop (`InvalidationLoop` has it)."""

    running: bool
    finished: bool
    iterated_at: float
    paused_since: float | None


@dataclass(frozen=True)
class Probe:
    """A probe's answer: whether it passes and why."""

    ok: bool
    reason: str


def liveness(loop: LoopHealth, max_idle_s: float) -> Probe:
    """Alive: the loop iterated within `max_idle_s` (it iterates every fetch timeout while it
    runs), or it is still starting (joining the group) and was built within `max_idle_s`."""
    idle_s = time.monotonic() - loop.iterated_at
    if loop.finished:
        return Probe(False, "the loop has stopped")
    if not loop.running:
        if idle_s > max_idle_s:
            return Probe(False, f"the loop has not started in {idle_s:.0f} s")
        return Probe(True, "starting: joining the group")
    if idle_s > max_idle_s:
        return Probe(False, f"the loop has not iterated for {idle_s:.0f} s")
    return Probe(True, "the loop is running")


def readiness(loop: LoopHealth, assigned: Callable[[], bool], max_paused_s: float) -> Probe:
    """Ready: partitions assigned and not paused longer than `max_paused_s`."""
    if not assigned():
        return Probe(False, "no partition assigned")
    if loop.paused_since is not None:
        paused_s = time.monotonic() - loop.paused_since
        if paused_s > max_paused_s:
            return Probe(False, f"paused for {paused_s:.0f} s: a purge is failing")
    return Probe(True, "partitions assigned, purging")


class Endpoints:
    """Serves the metrics and the probes of one invalidator (or of the watchdog)."""

    def __init__(
        self,
        metrics: Exposition,
        loop: LoopHealth,
        *,
        assigned: Callable[[], bool],
        max_paused_s: float,
        max_idle_s: float,
    ) -> None:
        """assigned: whether the consumer holds partitions now.
        max_paused_s: /readyz fails once the partitions are paused this long.
        max_idle_s: /healthz fails once the loop has not iterated (or started) for this long.
        """
        self._metrics = metrics
        self._loop = loop
        self._assigned = assigned
        self._max_paused_s = max_paused_s
        self._max_idle_s = max_idle_s
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on host:port (0: a free port); the address bound."""
        self._server = await asyncio.start_server(self._serve, host, port)
        address: tuple[str, int] = self._server.sockets[0].getsockname()[:2]
        log.info("metrics and probes on http://%s:%d", *address)
        return address

    async def stop(self) -> None:
        """Stop listening and close the server."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            method, _, rest = request.decode("latin-1").partition(" ")
            path = rest.partition(" ")[0].partition("?")[0]
            status, content_type, body = self._respond(method, path)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass  # a client that went away or sent no request
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _respond(self, method: str, path: str) -> tuple[str, str, bytes]:
        if method != "GET":
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, self._metrics.exposition()
        if path == "/healthz":
            return _probe_response(liveness(self._loop, self._max_idle_s))
        if path == "/readyz":
            return _probe_response(readiness(self._loop, self._assigned, self._max_paused_s))
        return "404 Not Found", "text/plain", b"/metrics, /healthz or /readyz\n"


def _probe_response(probe: Probe) -> tuple[str, str, bytes]:
    status = "200 OK" if probe.ok else "503 Service Unavailable"
    body = json.dumps({"ok": probe.ok, "reason": probe.reason}).encode()
    return status, "application/json", body
