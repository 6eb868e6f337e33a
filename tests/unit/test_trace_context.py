"""The platform's W3C trace-context path: the same context as OpenTelemetry's propagator for every
carrier, without going through the propagator when there is no tracestate or baggage."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from yiju.common import telemetry

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
CARRIERS = [
    {},
    {"ce_id": "e-1"},
    {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"},
    {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-00"},
    {"traceparent": f"  00-{TRACE_ID}-{SPAN_ID}-01\t"},
    {"traceparent": f"01-{TRACE_ID}-{SPAN_ID}-01-future-field"},
    {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01-not-allowed-in-00"},
    {"traceparent": f"ff-{TRACE_ID}-{SPAN_ID}-01"},
    {"traceparent": f"00-{'0' * 32}-{SPAN_ID}-01"},
    {"traceparent": f"00-{TRACE_ID}-{'0' * 16}-01"},
    {"traceparent": f"00-{TRACE_ID.upper()}-{SPAN_ID}-01"},
    {"traceparent": "garbage"},
    {"traceparent": ""},
    {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01" + "x" * 600},
    {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01", "tracestate": "vendor=abc"},
    {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01", "baggage": "tenant=t-1"},
]


def _described(context: Context) -> tuple[object, ...]:
    span_context = trace.get_current_span(context).get_span_context()
    return (span_context, dict(baggage.get_all(context)))


@pytest.mark.parametrize("carrier", CARRIERS, ids=lambda c: repr(c)[:60])
def test_extract_gives_the_propagators_context(carrier: dict[str, str]) -> None:
    assert _described(telemetry.extract(carrier)) == _described(propagate.extract(carrier))


@pytest.fixture
def no_propagator(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fails any call into the global propagator's extract/inject."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("went through opentelemetry.propagate")

    monkeypatch.setattr(propagate, "extract", refuse)
    monkeypatch.setattr(propagate, "inject", refuse)
    yield


def test_a_plain_traceparent_does_not_go_through_the_propagator(no_propagator: None) -> None:
    context = telemetry.extract({"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"})
    span_context = trace.get_current_span(context).get_span_context()
    assert (span_context.trace_id, span_context.span_id) == (int(TRACE_ID, 16), int(SPAN_ID, 16))
    assert span_context.is_remote and span_context.trace_flags.sampled
    carrier: dict[str, str] = {}
    telemetry.inject(carrier, context)
    assert carrier == {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"}


def _context_of(span_context: SpanContext, entries: dict[str, str] | None = None) -> Context:
    context = trace.set_span_in_context(NonRecordingSpan(span_context), Context())
    for key, value in (entries or {}).items():
        context = baggage.set_baggage(key, value, context)
    return context


@pytest.mark.parametrize(
    "context",
    [
        Context(),
        _context_of(SpanContext(int(TRACE_ID, 16), int(SPAN_ID, 16), False, TraceFlags(1))),
        _context_of(SpanContext(int(TRACE_ID, 16), int(SPAN_ID, 16), False, TraceFlags(0))),
        _context_of(
            SpanContext(int(TRACE_ID, 16), int(SPAN_ID, 16), False, TraceFlags(1), TraceState([("v", "1")]))
        ),
        _context_of(
            SpanContext(int(TRACE_ID, 16), int(SPAN_ID, 16), False, TraceFlags(1)), {"tenant": "t-1"}
        ),
    ],
    ids=["empty", "sampled", "not sampled", "tracestate", "baggage"],
)
def test_inject_writes_what_the_propagator_writes(context: Context) -> None:
    ours: dict[str, str] = {"ce_id": "e-1"}
    theirs: dict[str, str] = {"ce_id": "e-1"}
    telemetry.inject(ours, context)
    propagate.inject(theirs, context=context)
    assert ours == theirs
