"""The real invalidators as subprocesses (`python -m invalidator run --region R`), one per region.

Each run uses consumer groups of its own, committed at the log end before the processes start,
so they purge this run's events and skip every older one.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from invalidator.settings import InvalidatorSettings
from tests.integration.kafka_tools import start_group_at_end

STOP_TIMEOUT_S = 30.0


class InvalidatorProcesses:
    """Both regions' invalidators, started and stopped together."""

    def __init__(self, settings: InvalidatorSettings, *, group_prefix: str, log_dir: Path) -> None:
        """settings: the endpoints (from the environment).
        group_prefix: a prefix unique to this run (INVALIDATOR_GROUP_PREFIX).
        log_dir: where each process's log and stats file go.
        """
        self._settings = settings.model_copy(update={"group_prefix": group_prefix})
        self._group_prefix = group_prefix
        self._log_dir = log_dir
        self._processes: dict[str, asyncio.subprocess.Process] = {}

    def log_path(self, region: str) -> Path:
        """The log file of a region's invalidator."""
        return self._log_dir / f"invalidator-{region}.log"

    def _stats_path(self, region: str) -> Path:
        return self._log_dir / f"stats-{region}.json"

    async def start(self) -> None:
        """Commit the log end for every region's new group, then start the processes."""
        self._log_dir.mkdir(parents=True, exist_ok=True)
        topics = self._settings.load_catalogue().topics()
        for region in sorted(self._settings.regions):
            await start_group_at_end(self._settings.kafka, self._settings.group_id(region), topics)
        for region in sorted(self._settings.regions):
            self._stats_path(region).unlink(missing_ok=True)
            env = {
                **os.environ,
                "INVALIDATOR_GROUP_PREFIX": self._group_prefix,
                "INVALIDATOR_STATS_FILE": str(self._stats_path(region)),
                "INVALIDATOR_STATS_INTERVAL_S": "1",
            }
            with self.log_path(region).open("ab") as log:
                self._processes[region] = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "invalidator",
                    "run",
                    "--region",
                    region,
                    env=env,
                    stdout=log,
                    stderr=log,
                    # Out of the terminal's process group: Ctrl-C reaches the harness, which
                    # stops them in order.
                    start_new_session=True,
                )

    def check_running(self) -> None:
        """Raise if a process has exited."""
        for region, process in self._processes.items():
            if process.returncode is not None:
                raise RuntimeError(
                    f"invalidator {region} exited with {process.returncode}; "
                    f"see {self.log_path(region)}"
                )

    async def stop(self) -> dict[str, dict[str, float]]:
        """SIGTERM every process (killing those that ignore it); their final stats per region."""
        for process in self._processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self._processes.values():
            try:
                await asyncio.wait_for(process.wait(), timeout=STOP_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                await process.wait()
        stats = {}
        for region in self._processes:
            try:
                stats[region] = json.loads(self._stats_path(region).read_text())
            except (OSError, ValueError):
                stats[region] = {}
        self._processes.clear()
        return stats
