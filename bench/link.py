"""A client of the link proxy's control port (`deploy/local/link_proxy.py`): the delayed, cuttable
link between the regions of the local stack's mirrored topology (`stack.sh up --mirrored`).

    link = Link.from_env()          # MIRROR_LINK_CONTROL, as `stack.sh up --mirrored` prints it
    await link.set_delay(40, jitter_ms=5)
    await link.cut()                # every connection through the link dropped, new ones refused
    await link.heal()
    print(await link.status())
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass

CONTROL_VARIABLE = "MIRROR_LINK_CONTROL"
"""The environment variable naming the control port as `host:port`."""


class LinkError(RuntimeError):
    """The link refused a command (it answered `error ...`) or did not answer."""


@dataclass(frozen=True)
class LinkStatus:
    """What the link says about itself."""

    delay_ms: float
    """The one-way delay of every chunk, each direction."""
    jitter_ms: float
    """The uniform jitter (+-) over the delay."""
    cut: bool
    """True while the link drops and refuses every connection."""
    connections: int
    """Connections open through the link now."""
    bytes_forwarded: int
    """Bytes delivered through the link since it started, both directions."""


class Link:
    """The control port of a running link proxy; each call is one command on a connection of
    its own."""

    def __init__(self, host: str = "127.0.0.1", port: int = 23099, timeout_s: float = 5) -> None:
        """host, port: the control port. timeout_s: how long a command may take."""
        self.host = host
        self.port = port
        self.timeout_s = timeout_s

    @classmethod
    def from_env(cls, value: str | None = None) -> Link:
        """The link `value` names (`host:port`), by default `MIRROR_LINK_CONTROL`'s.

        Raises LinkError when neither is given.
        """
        address = value or os.environ.get(CONTROL_VARIABLE)
        if not address:
            raise LinkError(f"{CONTROL_VARIABLE} is not set (stack.sh up --mirrored prints it)")
        host, _, port = address.rpartition(":")
        return cls(host or "127.0.0.1", int(port))

    async def command(self, line: str) -> str:
        """Send one command line; return the answer after `ok ` (raises LinkError on `error`,
        on no answer or when the control port cannot be reached)."""
        try:
            async with asyncio.timeout(self.timeout_s):
                reader, writer = await asyncio.open_connection(self.host, self.port)
                try:
                    writer.write(line.encode() + b"\n")
                    await writer.drain()
                    answer = (await reader.readline()).decode().strip()
                finally:
                    writer.close()
                    await writer.wait_closed()
        except (OSError, TimeoutError) as error:
            raise LinkError(
                f"link control {self.host}:{self.port} did not answer {line!r}: {error!r}"
            ) from error
        if answer == "ok" or answer.startswith("ok "):
            return answer.removeprefix("ok").strip()
        raise LinkError(f"link control {self.host}:{self.port} refused {line!r}: {answer!r}")

    async def cut(self) -> None:
        """Drop every open connection through the link and refuse new ones until `heal`."""
        await self.command("cut")

    async def heal(self) -> None:
        """Accept connections through the link again."""
        await self.command("heal")

    async def set_delay(self, ms: float, jitter_ms: float = 0) -> None:
        """Delay every chunk by `ms` one way (each direction), plus a uniform +-`jitter_ms`;
        byte order within a connection is kept."""
        await self.command(f"delay {ms:g} {jitter_ms:g}")

    async def status(self) -> LinkStatus:
        """The link's delay, jitter, cut state, open connections and bytes forwarded."""
        fields = json.loads(await self.command("status"))
        return LinkStatus(
            delay_ms=float(fields["delay_ms"]),
            jitter_ms=float(fields["jitter_ms"]),
            cut=bool(fields["cut"]),
            connections=int(fields["connections"]),
            bytes_forwarded=int(fields["bytes_forwarded"]),
        )
