"""The `invalidator` command run as its own process, as an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from bench.stack import REPO

CLI_TIMEOUT_S = 90.0

Cli = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]
"""`invalidator <args> --json` run in-process: (exit status, the JSON it printed)."""


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = CLI_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """Run `python -m invalidator ARGS` to its end and capture its output.

    env: variables added to (or replacing) this process's environment.
    timeout: seconds before it counts as hung (subprocess.TimeoutExpired).
    """
    return subprocess.run(
        [sys.executable, "-m", "invalidator", *args],
        env={**os.environ, **(env or {})},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn_cli(*args: str, env: Mapping[str, str], output: Path) -> subprocess.Popen[bytes]:
    """Start `python -m invalidator ARGS` in the background, stdout and stderr into `output`.

    env: variables added to (or replacing) this process's environment.
    """
    with output.open("ab") as file:
        return subprocess.Popen(
            [sys.executable, "-m", "invalidator", *args],
            env={**os.environ, **env},
            cwd=REPO,
            stdout=file,
            stderr=file,
        )
