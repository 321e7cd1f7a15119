"""The W3C trace context of the current OpenTelemetry span, for an envelope's `trace`.

OpenTelemetry is optional (the `otel` extra): without it, or without a current span, there is
no context and envelopes carry none.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from contracts.events import TraceContext

Inject = Callable[[dict[str, str]], None]


def current_trace() -> TraceContext | None:
    """The trace context of the current span; None when OpenTelemetry is not installed or no
    span is current."""
    inject = _injector()
    if inject is None:
        return None
    carrier: dict[str, str] = {}
    inject(carrier)
    traceparent = carrier.get("traceparent")
    if traceparent is None:
        return None
    return TraceContext(traceparent=traceparent, tracestate=carrier.get("tracestate") or None)


@functools.cache
def _injector() -> Inject | None:
    """The W3C propagator's inject, looked up once (None without OpenTelemetry)."""
    try:
        from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
            TraceContextTextMapPropagator,
        )
    except ImportError:
        return None
    return TraceContextTextMapPropagator().inject
