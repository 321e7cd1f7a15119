"""The real invalidators as subprocesses (`python -m invalidator run --region R`), one per region.

Used by the demo (the regions' own groups) and the stale-data harness (groups of its own,
committed at the log end first, so that a run purges its events and skips every older one). In
the mirrored topology each region's process reads its own cluster (demo/topology.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from demo import topology
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
        clusters: Mapping[str, str] | None = None,
    ) -> None:
        """settings: the endpoints (from the environment).
        log_dir: where each process's log and stats file go.
        group_prefix: INVALIDATOR_GROUP_PREFIX for the processes (default: the settings').
        start_at_log_end: commit the log end for every region's group before starting, so new
            groups skip older events.
        clusters: the mirrored topology: each region's own cluster (bootstrap servers), which
            its process reads with the other regions' mirrored topics. None: one cluster.
        """
        if group_prefix is not None:
            settings = settings.model_copy(update={"group_prefix": group_prefix})
        self._settings = settings
        self._clusters = clusters
        self._start_at_log_end = start_at_log_end
        self._log_dir = log_dir
        self.processes: dict[str, asyncio.subprocess.Process] = {}

    @property
    def settings(self) -> InvalidatorSettings:
        """The settings the processes run with (their group prefix included)."""
        return self._settings

    def region_settings(self, region: str) -> InvalidatorSettings:
        """The settings a region's process runs with: in the mirrored topology its own cluster
        and the mirrored topics, else the shared settings."""
        if self._clusters is None:
            return self._settings
        return topology.region_settings(self._settings, region, self._clusters)

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
            catalogue = self._settings.load_catalogue()
            for region in sorted(self._settings.regions):
                own = self.region_settings(region)
                await start_at_log_end(own.kafka, own.group_id(region), own.event_topics(catalogue))
        for region in sorted(self._settings.regions):
            self.stats_path(region).unlink(missing_ok=True)
            own_cluster = (
                {} if self._clusters is None
                else topology.invalidator_environment(self.region_settings(region))
            )  # fmt: skip
            env = {
                **os.environ,
                **own_cluster,
                # The settings' catalogue (none: the process stops, naming the setting).
                "INVALIDATOR_CATALOGUE": self._settings.catalogue or "",
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
