"""OpenTelemetry spans of the invalidator: one `invalidation.batch` span per purged batch,
linked to the spans that published its events.

Needs the `otel` extra; the tracer comes from the global provider, so the application's SDK
and exporter configuration applies.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from opentelemetry import trace
from opentelemetry.trace import Link
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from contracts.events import Event
from invalidator.outcome import BatchOutcome

SPAN_NAME = "invalidation.batch"
MAX_LINKS = 128
"""Links per span: the batch's first events' producer spans (a batch holds up to thousands)."""

_PROPAGATOR = TraceContextTextMapPropagator()


class BatchSpans:
    """A `BatchListener` recording one span per batch purged everywhere."""

    def __init__(self, *, region: str, group: str) -> None:
        """region: the region the invalidator purges; group: its consumer group id."""
        self._tracer = trace.get_tracer("invalidator")
        self._attributes = {"invalidation.region": region, "invalidation.group": group}

    def batch_purged(self, outcome: BatchOutcome) -> None:
        """Record the batch's span, from the start of its successful purge attempt to now."""
        span = self._tracer.start_span(
            SPAN_NAME,
            links=_producer_links(event for _, event in outcome.events),
            start_time=outcome.started_ns,
            attributes={
                **self._attributes,
                "invalidation.records": len(outcome.records),
                "invalidation.namespaces_purged": outcome.namespaces_purged,
                "invalidation.dead_lettered": len(outcome.rejected),
            },
        )
        span.end()


def _producer_links(events: Iterable[Event]) -> list[Link]:
    """Links to the producer spans of the first `MAX_LINKS` events that carry a trace."""
    traced = (event.envelope.trace for event in events if event.envelope.trace is not None)
    links = []
    for context in itertools.islice(traced, MAX_LINKS):
        carrier = {"traceparent": context.traceparent}
        if context.tracestate is not None:
            carrier["tracestate"] = context.tracestate
        span_context = trace.get_current_span(_PROPAGATOR.extract(carrier)).get_span_context()
        if span_context.is_valid:
            links.append(Link(span_context))
    return links
