"""A real Prometheus server (Debian's `prometheus` package) as a process of the test: it scrapes
the given targets every second into a data directory of the test, and answers instant queries
on its HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.waiting import wait_until

SCRAPE_INTERVAL_S = 1
"""How often every target is scraped."""
READY_WITHIN_S = 60.0
"""From its start until Prometheus answers /-/ready."""
PORT_VARIABLE = "TEST_PROMETHEUS_PORT"
"""The port Prometheus listens on when set (else a free one)."""


def free_port() -> int:
    """A port nothing listens on now, on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def prometheus_binary() -> str:
    """The `prometheus` executable; an AssertionError saying how to install it when missing."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise AssertionError(
            "prometheus is not installed: apt-get install prometheus (.ci/run installs it)"
        )
    return binary


def scrape_config(jobs: Mapping[str, Sequence[str]]) -> str:
    """A prometheus.yml scraping each job's targets (host:port) every second."""
    config = {
        "global": {
            "scrape_interval": f"{SCRAPE_INTERVAL_S}s",
            "scrape_timeout": f"{SCRAPE_INTERVAL_S}s",
            "evaluation_interval": f"{SCRAPE_INTERVAL_S}s",
        },
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(targets)}]}
            for job, targets in jobs.items()
        ],
    }
    return json.dumps(config, indent=2)  # JSON is YAML


class PrometheusApi:
    """Instant queries on a running Prometheus's HTTP API."""

    def __init__(self, url: str) -> None:
        """url: http://host:port of the server."""
        self.url = url

    async def query(self, expression: str) -> list[dict[str, Any]]:
        """The instant vector `expression` evaluates to now: [{"metric": labels, "value":
        [time, "number"]}, ...]."""
        address = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        body = await asyncio.to_thread(_get, address)
        answer: dict[str, Any] = json.loads(body)
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    async def series(self, expression: str, *labels: str) -> dict[tuple[str, ...], float]:
        """`expression`'s samples now, keyed by the values of `labels`."""
        return {
            tuple(sample["metric"][label] for label in labels): float(sample["value"][1])
            for sample in await self.query(expression)
        }

    async def value(self, expression: str) -> float | None:
        """The single sample `expression` evaluates to now; None when it has none."""
        result = await self.query(expression)
        assert len(result) <= 1, f"{expression} has {len(result)} series: {result}"
        return float(result[0]["value"][1]) if result else None


def _get(address: str) -> bytes:
    with urllib.request.urlopen(address, timeout=10) as response:
        body: bytes = response.read()
        return body


async def _ready(api: PrometheusApi, process: subprocess.Popen[bytes], log: Path) -> bool:
    assert process.poll() is None, f"prometheus exited: {log.read_text()[-3000:]}"
    try:
        await asyncio.to_thread(_get, f"{api.url}/-/ready")
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
    return True


def _start(
    binary: str, *, config: Path, directory: Path, port: int, log: Path
) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                # Debian's build looks for its web console files under /etc by default.
                f"--web.console.templates={directory}",
                f"--web.console.libraries={directory}",
            ],
            stdout=output,
            stderr=output,
        )


@contextlib.asynccontextmanager
async def running_prometheus(
    jobs: Mapping[str, Sequence[str]], directory: Path
) -> AsyncIterator[PrometheusApi]:
    """Prometheus scraping `jobs` (job name -> host:port targets) every second, its config, data
    and log in `directory`; stopped on exit.

    Its port is TEST_PROMETHEUS_PORT when set, else a free one.
    """
    binary = prometheus_binary()
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "prometheus.yml"
    config.write_text(scrape_config(jobs))
    log = directory / "prometheus.log"
    port = int(os.environ.get(PORT_VARIABLE) or free_port())
    process = _start(binary, config=config, directory=directory, port=port, log=log)
    api = PrometheusApi(f"http://127.0.0.1:{port}")
    try:
        await wait_until(
            lambda: _ready(api, process, log),
            within=READY_WITHIN_S,
            what=f"prometheus to answer on port {port} ({log})",
            interval=0.2,
        )
        yield api
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 30)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 30)
