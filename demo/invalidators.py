"""The real invalidators as subprocesses (`python -m invalidator run --region R`), one per region.

Used by the demo (the regions' own groups) and the stale-data harness (groups of its own,
committed at the log end first, so that a run purges its events and skips every older one).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from invalidator.operators import start_at_log_end
from invalidator.settings import InvalidatorSettings

STOP_TIMEOUT_S = 30.0


class InvalidatorProcesses:
    """Both regions' invalidators, started and stopped together."""

    def __init__(
        self,
        settings: InvalidatorSettings,
        *,
        log_dir: Path,
        group_prefix: str | None = None,
        start_at_log_end: bool = False,
    ) -> None:
        """settings: the endpoints (from the environment).
        log_dir: where each process's log and stats file go.
        group_prefix: INVALIDATOR_GROUP_PREFIX for the processes (default: the settings').
        start_at_log_end: commit the log end for every region's group before starting, so new
            groups skip older events.
        """
        if group_prefix is not None:
            settings = settings.model_copy(update={"group_prefix": group_prefix})
        self._settings = settings
        self._start_at_log_end = start_at_log_end
        self._log_dir = log_dir
        self.processes: dict[str, asyncio.subprocess.Process] = {}

    @property
    def settings(self) -> InvalidatorSettings:
        """The settings the processes run with (their group prefix included)."""
        return self._settings

    def log_path(self, region: str) -> Path:
        """The log file of a region's invalidator."""
        return self._log_dir / f"invalidator-{region}.log"

    def stats_path(self, region: str) -> Path:
        """The stats file a region's invalidator rewrites every second."""
        return self._log_dir / f"stats-{region}.json"

    async def start(self) -> None:
        """Start one process per region (after committing the log end, if asked)."""
        self._log_dir.mkdir(parents=True, exist_ok=True)
        if self._start_at_log_end:
            topics = self._settings.load_catalogue().topics()
            for region in sorted(self._settings.regions):
                group = self._settings.group_id(region)
                await start_at_log_end(self._settings.kafka, group, topics)
        for region in sorted(self._settings.regions):
            self.stats_path(region).unlink(missing_ok=True)
            env = {
                **os.environ,
                "INVALIDATOR_GROUP_PREFIX": self._settings.group_prefix,
                "INVALIDATOR_STATS_FILE": str(self.stats_path(region)),
                "INVALIDATOR_STATS_INTERVAL_S": "1",
            }
            with self.log_path(region).open("ab") as log:
                self.processes[region] = await asyncio.create_subprocess_exec(
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
        for region, process in self.processes.items():
            if process.returncode is not None:
                raise RuntimeError(
                    f"invalidator {region} exited with {process.returncode}; "
                    f"see {self.log_path(region)}"
                )

    async def stop(self) -> dict[str, dict[str, float]]:
        """SIGTERM every process (killing those that ignore it); their final stats per region."""
        for process in self.processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                await asyncio.wait_for(process.wait(), timeout=STOP_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                await process.wait()
        stats = {}
        for region in self.processes:
            try:
                stats[region] = json.loads(self.stats_path(region).read_text())
            except (OSError, ValueError):
                stats[region] = {}
        self.processes.clear()
        return stats
