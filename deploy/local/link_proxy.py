#!/usr/bin/env python3
"""The link between the regions of the local stack's mirrored topology: a TCP proxy that delays.

Standard library only (run with the system python3, no venv). One process carries every route
of the link: each `--route LISTEN_PORT:HOST:PORT` listens on 127.0.0.1:LISTEN_PORT and forwards
every connection to HOST:PORT. Every chunk of bytes read in either direction is delivered after
the one-way delay plus a uniform jitter of +-J ms, never before the chunk read before it on the
same connection (deliver_at = max(previous deliver_at, now + delay + jitter)): byte order holds.

Control: a line protocol on 127.0.0.1:--control-port, one answer line per command:

    delay <ms> [<jitter_ms>]   ok delay <ms> jitter <jitter_ms>
    cut                        ok cut (every open connection is dropped, the routes stop listening:
                               new connections are refused until heal)
    heal                       ok heal
    status                     ok {"delay_ms": ..., "jitter_ms": ..., "cut": ...,
                               "connections": ..., "bytes_forwarded": ..., "routes": [...]}
    anything else              error <why>

Used by deploy/local/stack.sh (up --mirrored) and by bench/link.py's client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sys
import time

CHUNK = 65536


def log(message: str) -> None:
    """One line on stderr (stack.sh sends it to $STACK_DIR/logs/link.log)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"[{stamp}] link: {message}", file=sys.stderr, flush=True)


class Route:
    """One listening port of the link and where it forwards to."""

    def __init__(self, spec: str) -> None:
        listen, host, port = spec.rsplit(":", 2) if spec.count(":") >= 2 else ("", "", "")
        if not (listen.isdigit() and port.isdigit() and host):
            raise ValueError(f"route must be LISTEN_PORT:HOST:PORT, got {spec!r}")
        self.listen_port = int(listen)
        self.host = host
        self.port = int(port)
        self.server: asyncio.Server | None = None

    def __str__(self) -> str:
        return f"127.0.0.1:{self.listen_port} -> {self.host}:{self.port}"


class Link:
    """The routes, the delay and the open connections."""

    def __init__(self, routes: list[Route], delay_ms: float, jitter_ms: float) -> None:
        self.routes = routes
        self.delay_ms = delay_ms
        self.jitter_ms = jitter_ms
        self.cut = False
        self.bytes_forwarded = 0
        self.connections: set[asyncio.Task[None]] = set()
        self.transports: dict[asyncio.Task[None], list[asyncio.WriteTransport]] = {}

    def one_way_s(self) -> float:
        """The delay for a chunk read now, jitter included, in seconds (never negative)."""
        jitter = random.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        return max(0.0, self.delay_ms + jitter) / 1000

    async def listen(self) -> None:
        """Listen on every route (again, after a heal)."""
        for route in self.routes:
            if route.server is None:
                route.server = await asyncio.start_server(
                    lambda r, w, route=route: self.accept(route, r, w),
                    "127.0.0.1",
                    route.listen_port,
                    reuse_address=True,
                )

    async def stop_listening(self) -> None:
        """Close every route's listening socket: new connections are refused."""
        for route in self.routes:
            if route.server is not None:
                route.server.close()
                await route.server.wait_closed()
                route.server = None

    def drop_connections(self) -> int:
        """Abort every open connection through the link (both of its sockets); how many."""
        dropped = len(self.connections)
        for task in list(self.connections):
            for transport in self.transports.get(task, []):
                transport.abort()
            task.cancel()
        return dropped

    async def accept(
        self, route: Route, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        """Serve one connection: connect upstream, then pump both ways until both end."""
        if self.cut:
            client_w.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        try:
            upstream_r, upstream_w = await asyncio.open_connection(route.host, route.port)
        except OSError as error:
            log(f"{route}: upstream refused ({error}); closing the client")
            client_w.transport.abort()
            return
        self.connections.add(task)
        self.transports[task] = [client_w.transport, upstream_w.transport]
        try:
            await asyncio.gather(self.pump(client_r, upstream_w), self.pump(upstream_r, client_w))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.connections.discard(task)
            self.transports.pop(task, None)
            for writer in (client_w, upstream_w):
                writer.transport.abort()

    async def pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        """Copy source to sink, each chunk delivered at its own time, in order; on EOF the
        sink is half-closed once everything before it is delivered."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                deliver_at, data = await queue.get()
                wait = deliver_at - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if sink.can_write_eof():
                        sink.write_eof()
                    return
                sink.write(data)
                await sink.drain()
                self.bytes_forwarded += len(data)

        writer = asyncio.create_task(deliver())
        previous = 0.0
        try:
            while True:
                try:
                    data = await source.read(CHUNK)
                except OSError:
                    data = b""
                previous = max(previous, loop.time() + self.one_way_s())
                queue.put_nowait((previous, data))
                if not data:
                    break
            await writer
        finally:
            writer.cancel()

    def status(self) -> dict[str, object]:
        """What `status` answers."""
        return {
            "delay_ms": self.delay_ms,
            "jitter_ms": self.jitter_ms,
            "cut": self.cut,
            "connections": len(self.connections),
            "bytes_forwarded": self.bytes_forwarded,
            "routes": [str(route) for route in self.routes],
        }

    async def command(self, line: str) -> str:
        """Run one control command, return its answer line."""
        words = line.split()
        if not words:
            return "error empty command"
        name, args = words[0].lower(), words[1:]
        if name == "delay":
            try:
                values = [float(arg) for arg in args]
            except ValueError:
                return "error delay takes numbers: delay <ms> [<jitter_ms>]"
            if not 1 <= len(values) <= 2 or min(values) < 0:
                return "error usage: delay <ms> [<jitter_ms>] (both >= 0)"
            self.delay_ms = values[0]
            self.jitter_ms = values[1] if len(values) == 2 else 0.0
            log(f"delay {self.delay_ms:g} ms, jitter +-{self.jitter_ms:g} ms")
            return f"ok delay {self.delay_ms:g} jitter {self.jitter_ms:g}"
        if args:
            return f"error {name} takes no arguments"
        if name == "cut":
            self.cut = True
            await self.stop_listening()
            dropped = self.drop_connections()
            log(f"cut: {dropped} connection(s) dropped, new ones refused")
            return f"ok cut, {dropped} connection(s) dropped"
        if name == "heal":
            try:
                await self.listen()
            except OSError as error:
                return f"error cannot listen again: {error}"
            self.cut = False
            log("healed")
            return "ok heal"
        if name == "status":
            return "ok " + json.dumps(self.status())
        return f"error unknown command {name!r} (delay, cut, heal, status)"

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One control connection: a command per line, an answer per command."""
        try:
            while line := await reader.readline():
                answer = await self.command(line.decode(errors="replace"))
                writer.write(answer.encode() + b"\n")
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


async def run(args: argparse.Namespace) -> None:
    """Listen on every route and on the control port until SIGTERM or SIGINT."""
    link = Link([Route(spec) for spec in args.route], args.delay_ms, args.jitter_ms)
    await link.listen()
    control = await asyncio.start_server(link.control, "127.0.0.1", args.control_port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    log(
        f"up: {', '.join(str(route) for route in link.routes)}; control 127.0.0.1:"
        f"{args.control_port}; delay {args.delay_ms:g} ms, jitter +-{args.jitter_ms:g} ms"
    )
    await stopping.wait()
    log("stopping")
    control.close()
    await link.stop_listening()
    link.drop_connections()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*link.connections, return_exceptions=True)


def main() -> None:
    """Parse the options and run the link."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--route", action="append", required=True, metavar="LISTEN:HOST:PORT")
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=40.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    args = parser.parse_args()
    if args.delay_ms < 0 or args.jitter_ms < 0:
        parser.error("--delay-ms and --jitter-ms must be >= 0")
    try:
        [Route(spec) for spec in args.route]
    except ValueError as error:
        parser.error(str(error))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
