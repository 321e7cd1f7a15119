"""What every benchmark entry point does first: signals that cancel the run, and its settings."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from bench.stack import INVALIDATOR_ENDPOINTS, StackUnavailableError, ensure_stack
from contracts import SettingsError
from contracts.example_orders import EXAMPLE_CATALOGUE
from invalidator.cli import load_settings
from invalidator.settings import InvalidatorSettings

EXIT_UNAVAILABLE = 2
EXIT_INTERRUPTED = 130


def cancel_on_signals() -> None:
    """Make SIGINT and SIGTERM cancel the calling task (the run's main task) once.

    Later signals are ignored, so that they cannot interrupt the clean-up (stopping the
    invalidators and consumers the run started) half way.
    """
    main_task = asyncio.current_task()
    if main_task is None:
        raise RuntimeError("cancel_on_signals() must be called from the run's main task")

    def interrupt() -> None:
        if not main_task.cancelling():
            main_task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, interrupt)


def settings_with_regions() -> InvalidatorSettings:
    """The settings from the environment on the example catalogue (every benchmark runs the
    example domain); a SettingsError when they name no region."""
    settings = load_settings(EXAMPLE_CATALOGUE)
    if not settings.regions:
        raise SettingsError("INVALIDATOR_REGIONS is empty")
    return settings


def run_on_stack(
    main: Callable[[], Coroutine[Any, Any, int]],
    *,
    prog: str,
    cannot_run: tuple[type[Exception], ...] = (),
) -> int:
    """Start the local stack when no endpoints are given, run `main()`, and map its ends to
    exit statuses: its own, 2 when the run could not be made (no stack, bad settings, or one of
    `cannot_run`), 130 when interrupted (everything it started is stopped first).

    main: makes the run's coroutine (which calls `cancel_on_signals` first).
    prog: the command's name, for messages.
    cannot_run: further errors that mean the run could not be made.
    """
    expected: tuple[type[Exception], ...] = (StackUnavailableError, SettingsError, *cannot_run)
    try:
        ensure_stack(INVALIDATOR_ENDPOINTS)
        return asyncio.run(main())
    except expected as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"{prog}: interrupted; everything it started is stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
