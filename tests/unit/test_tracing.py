"""OpenTelemetry: envelopes carry the current span's trace context, and the invalidator records
one `invalidation.batch` span per purged batch, linked to its events' producer spans.

The SDK's in-memory exporter collects the spans; the publisher goes through FastStream's
TestKafkaBroker and the loop through the fakes of `test_loop`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import TopicPartition
from faststream.kafka import KafkaMessage, TestKafkaBroker
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext

from contracts import Event, KafkaConnection
from contracts.events import EventEnvelope, TraceContext
from contracts.example_orders import CATALOGUE, OrderCancelled
from invalidator.outcome import BatchOutcome
from invalidator.tracing import MAX_LINKS, SPAN_NAME, BatchSpans
from invalidator.wiring import batch_spans_if_installed
from producers import EventPublisher, EventToPublish, trace_context
from producers.publisher import envelope_and_topic
from producers.trace_context import current_trace
from tests.unit.loop_fakes import P0, P1, loop_on_fakes, order_record, run_until

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _sdk() -> None:
    """The global provider is set once per process: an SDK one, exporting to memory."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def _event(n: int) -> OrderCancelled:
    return OrderCancelled(order_id=f"o-{n}", company_id="c-1", reason="customer asked")


def _trace_id(context: TraceContext | None) -> int:
    assert context is not None
    return int(context.traceparent.split("-")[1], 16)


def _batch_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == SPAN_NAME]


def _count(span: ReadableSpan, attribute: str) -> int:
    """One of the counts that a batch span carries as an attribute."""
    assert span.attributes is not None
    count = span.attributes[attribute]
    assert isinstance(count, int)
    return count


async def test_publish_inside_a_span_carries_its_trace_context_to_the_record() -> None:
    publisher = EventPublisher(KafkaConnection(), source="orders-api")
    received: asyncio.Queue[KafkaMessage] = asyncio.Queue()

    @publisher.broker.subscriber("orders.events")
    async def capture(message: KafkaMessage) -> None:
        await received.put(message)

    tracer = trace.get_tracer("test")
    async with TestKafkaBroker(publisher.broker):
        with tracer.start_as_current_span("write") as span:
            envelope = await publisher.publish(_event(1), tenant="acme", aggregate_version=1)
        outside = await publisher.publish(_event(2), tenant="acme", aggregate_version=1)
        message = await asyncio.wait_for(received.get(), timeout=5)

    context = span.get_span_context()
    assert _trace_id(envelope.trace) == context.trace_id
    assert envelope.trace is not None
    assert envelope.trace.traceparent.split("-")[2] == f"{context.span_id:016x}"
    decoded = CATALOGUE.schemas.decode(message.body)
    assert isinstance(decoded, Event)
    assert decoded.envelope.trace == envelope.trace
    assert outside.trace is None


def test_a_batch_item_gets_the_current_span_and_a_given_context_wins() -> None:
    given = TraceContext(traceparent=f"00-{'ab' * 16}-{'cd' * 8}-01")
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("write") as span:
        wrapped, _ = envelope_and_topic(
            EventToPublish(_event(1), tenant="acme", aggregate_version=1), source="outbox"
        )
        kept, _ = envelope_and_topic(
            EventToPublish(_event(2), tenant="acme", aggregate_version=1, trace=given),
            source="outbox",
        )
    assert _trace_id(wrapped.trace) == span.get_span_context().trace_id
    assert kept.trace == given


async def test_the_loop_records_one_span_per_batch_linked_to_the_producer_spans(
    spans: InMemorySpanExporter,
) -> None:
    tracer = trace.get_tracer("test")
    records: dict[TopicPartition, list[Any]] = {}
    producer_spans: dict[tuple[TopicPartition, int], SpanContext] = {}
    for tp in (P0, P1):
        records[tp] = []
        for offset in range(4):
            with tracer.start_as_current_span("write") as written:
                records[tp].append(order_record(tp, offset, trace=current_trace()))
            producer_spans[(tp, offset)] = written.get_span_context()
    loop, consumer, _, _ = loop_on_fakes(records, listeners=[BatchSpans(region="eu", group="test")])
    await run_until(loop, lambda: consumer.committed() == {P0: 4, P1: 4})

    batches = _batch_spans(spans)
    assert len(batches) == loop.stats.batches >= 1
    assert sum(_count(span, "invalidation.records") for span in batches) == 8
    assert sum(_count(span, "invalidation.namespaces_purged") for span in batches) == (
        loop.stats.namespaces_purged
    )
    for span in batches:
        assert span.attributes is not None
        assert span.attributes["invalidation.region"] == "eu"
        assert span.attributes["invalidation.group"] == "test"
        assert span.attributes["invalidation.dead_lettered"] == 0
        assert span.start_time is not None and span.end_time is not None
        assert span.start_time <= span.end_time
    linked = [(link.context.trace_id, link.context.span_id) for s in batches for link in s.links]
    assert sorted(linked) == sorted((c.trace_id, c.span_id) for c in producer_spans.values())


def test_links_are_bounded_to_the_first_events_and_untraced_events_have_none(
    spans: InMemorySpanExporter,
) -> None:
    untraced = [
        EventEnvelope.wrap(_event(n), source="test", tenant="t", aggregate_version=1)
        for n in range(20)
    ]
    traced = [
        EventEnvelope.wrap(
            _event(n),
            source="test",
            tenant="t",
            aggregate_version=1,
            trace=TraceContext(traceparent=f"00-{n + 1:032x}-{n + 1:016x}-01"),
        )
        for n in range(MAX_LINKS + 20)
    ]
    decoded = [CATALOGUE.schemas.decode(envelope.to_bytes()) for envelope in [*untraced, *traced]]
    batch = [event for event in decoded if isinstance(event, Event)]
    assert len(batch) == len(decoded)

    BatchSpans(region="us", group="g").batch_purged(
        BatchOutcome(
            records=batch,
            events=[(None, event) for event in batch],
            purged=(),
            namespaces_purged=1,
            rejected=(),
            offsets={},
            newest_ms={},
            oldest_ms=0.0,
            remote_oldest_ms={},
            started_ns=0,
            duration_s=0.0,
            purged_ms=0.0,
        )
    )

    (span,) = _batch_spans(spans)
    assert [link.context.trace_id for link in span.links] == list(range(1, MAX_LINKS + 1))


def test_without_opentelemetry_envelopes_carry_no_context_and_no_spans_are_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installed = [name for name in sys.modules if name.split(".")[0] == "opentelemetry"]
    with trace.get_tracer("test").start_as_current_span("write"):
        assert current_trace() is not None
        with monkeypatch.context() as patch:
            for name in [*installed, "invalidator.tracing"]:
                patch.setitem(sys.modules, name, None)  # importing it raises ImportError
            trace_context._injector.cache_clear()
            try:
                assert current_trace() is None
                assert batch_spans_if_installed(region="eu", group="g") is None
            finally:
                trace_context._injector.cache_clear()
