"""The harness's own garbage-collection pauses: they delay every timestamp the harness takes
(a purge seen late widens the window), so each phase reports them."""

from __future__ import annotations

import gc
import time
from types import TracebackType
from typing import Self


class GcPauses:
    """While entered, records how long each garbage collection of this process took."""

    def __init__(self) -> None:
        self.pauses_ms: list[float] = []
        self._started = 0.0

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses_ms.append((time.perf_counter() - self._started) * 1000)

    def __enter__(self) -> Self:
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        gc.callbacks.remove(self._on_gc)

    def summary(self) -> dict[str, float]:
        """How many collections ran, and the longest and total pause in ms."""
        return {
            "collections": len(self.pauses_ms),
            "max_ms": round(max(self.pauses_ms, default=0.0), 2),
            "total_ms": round(sum(self.pauses_ms), 1),
        }
