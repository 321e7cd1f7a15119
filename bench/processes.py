"""Processes under test (invalidators, baseline consumers): started, watched, always stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from contracts.example_orders import CATALOGUE, EXAMPLE_CATALOGUE
from invalidator.operators import start_at_log_end
from invalidator.settings import InvalidatorSettings

STOP_TIMEOUT_S = 20.0
KILL_TIMEOUT_S = 10.0


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM (peak resident set) of a live process in MB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def current_rss_mb(pid: int) -> float | None:
    """VmRSS (resident set now) of a live process in MB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """The process's user + system CPU time so far, seconds (None once it has gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command's closing parenthesis; utime and stime are fields 14 and 15.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BenchProcess:
    """One subprocess with its own log file; its peak RSS is remembered while it runs."""

    def __init__(
        self, name: str, argv: Sequence[str], *, env: dict[str, str], log_path: Path
    ) -> None:
        """name: how reports call it.
        argv: the command line.
        env: variables added to this process's environment.
        log_path: where its stdout and stderr go.
        """
        self.name = name
        self._argv = list(argv)
        self._env = env
        self.log_path = log_path
        self._process: asyncio.subprocess.Process | None = None
        self.peak_rss_mb: float | None = None

    @property
    def pid(self) -> int:
        """The process id (started processes only)."""
        if self._process is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._process.pid

    async def start(self) -> None:
        """Start the process."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self._argv,
                env={**os.environ, **self._env},
                stdout=log,
                stderr=log,
                start_new_session=True,  # Ctrl-C reaches the bench, which stops it in order
            )

    def sample_rss(self) -> float | None:
        """Read the process's peak RSS now (VmHWM is lost at exit); the peak so far."""
        if self._process is not None and self._process.returncode is None:
            peak = peak_rss_mb(self._process.pid)
            if peak is not None:
                self.peak_rss_mb = max(peak, self.peak_rss_mb or 0.0)
        return self.peak_rss_mb

    def cpu_seconds(self) -> float | None:
        """Its CPU time so far, seconds (None when not running)."""
        if self._process is None or self._process.returncode is not None:
            return None
        return cpu_seconds(self._process.pid)

    def check_running(self) -> None:
        """Raise if the process has exited."""
        if self._process is not None and self._process.returncode is not None:
            raise RuntimeError(
                f"{self.name} exited with {self._process.returncode}; see {self.log_path}"
            )

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; the exit status."""
        process = self._process
        if process is None:
            return None
        self.sample_rss()
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=STOP_TIMEOUT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await asyncio.wait_for(process.wait(), timeout=KILL_TIMEOUT_S)
        return process.returncode


def invalidator_process(
    region: str,
    *,
    group_prefix: str,
    log_dir: Path,
    name: str | None = None,
    env: dict[str, str] | None = None,
) -> BenchProcess:
    """`python -m invalidator run --region <region>` on the example catalogue, in a group of
    its own prefix.

    region: the region to purge.
    group_prefix: INVALIDATOR_GROUP_PREFIX (the group is `<prefix>.<region>`).
    log_dir: where the log goes.
    name: the process's name in reports (default `invalidator-<region>`).
    env: further INVALIDATOR_* variables (e.g. its own cluster in the mirrored topology).
    """
    label = name or f"invalidator-{region}"
    return BenchProcess(
        label,
        [sys.executable, "-m", "invalidator", "run", "--region", region],
        env={
            "INVALIDATOR_CATALOGUE": EXAMPLE_CATALOGUE,
            "INVALIDATOR_GROUP_PREFIX": group_prefix,
            "INVALIDATOR_STATS_FILE": str(log_dir / f"{label}-stats.json"),
            **(env or {}),
        },
        log_path=log_dir / f"{label}.log",
    )


@contextlib.asynccontextmanager
async def running(processes: Sequence[BenchProcess]) -> AsyncIterator[Sequence[BenchProcess]]:
    """Start every process; stop them all on the way out, whatever happened."""
    try:
        for process in processes:
            await process.start()
        yield processes
    finally:
        # Shielded: a cancelled run still stops what it started.
        await asyncio.shield(asyncio.gather(*(p.stop() for p in processes)))


async def region_invalidators(
    settings: InvalidatorSettings, *, prefix: str, log_dir: Path
) -> tuple[InvalidatorSettings, list[BenchProcess]]:
    """One `invalidator run` process per region, in groups of `prefix` that start at the log end.

    Returns the settings with that group prefix and the processes (not started yet).
    settings: the endpoints.
    prefix: the group prefix, unique to the figure and run.
    log_dir: where the processes' logs go.
    """
    settings = settings.model_copy(update={"group_prefix": prefix})
    for region in sorted(settings.regions):
        await start_at_log_end(settings.kafka, settings.group_id(region), CATALOGUE.topics())
    processes = [
        invalidator_process(region, group_prefix=prefix, log_dir=log_dir)
        for region in sorted(settings.regions)
    ]
    return settings, processes
