"""What every benchmark entry point does first: signals that cancel the run, and its settings."""

from __future__ import annotations

import asyncio
import signal

from invalidator.cli import load_settings
from invalidator.settings import InvalidatorSettings, SettingsError


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
    """The settings from the environment; a SettingsError when they name no region."""
    settings = load_settings()
    if not settings.regions:
        raise SettingsError("INVALIDATOR_REGIONS is empty")
    return settings
