"""W3C trace context in Kafka headers and gRPC metadata, without the generic propagator's layers.

Every consumed record is extracted and every published one injected, so this runs on each hop of
every sentence, sampled or not. OpenTelemetry's global propagator (a composite of TraceContext and
W3C Baggage, each going through a getter that wraps every value in a list, and a regex looked up in
re's cache per call) cost about 15 % of a consumer's tracing CPU. When the propagator is the default
one and a carrier holds neither `tracestate` nor `baggage` (the platform sets neither), the
`traceparent` header is parsed and written here, with the same rules and the same result
(tests/unit/test_trace_context.py checks it against the propagator); anything else goes through
`opentelemetry.propagate` as before.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping

from opentelemetry import baggage, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
# TraceContextTextMapPropagator's own format and limits.
_TRACEPARENT_RE = re.compile(
    "^[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})" + "(?:(-.*)|[ \t]*)$"
)
_MAX_LENGTH = 512
_NO_TRACE_ID = "0" * 32
_NO_SPAN_ID = "0" * 16
_DEFAULT_PROPAGATORS = [TraceContextTextMapPropagator, W3CBaggagePropagator]
_checked: tuple[object, bool] | None = None


def _default_propagation() -> bool:
    """True while the global propagator is OpenTelemetry's default (tracecontext, baggage)."""
    global _checked
    current = propagate.get_global_textmap()
    if _checked is None or _checked[0] is not current:
        default = (
            os.environ.get("OTEL_PROPAGATORS", "tracecontext,baggage").replace(" ", "")
            == "tracecontext,baggage"
            and isinstance(current, CompositePropagator)
            and [type(p) for p in getattr(current, "_propagators", ())] == _DEFAULT_PROPAGATORS
        )
        _checked = (current, default)
    return _checked[1]


def extract(carrier: Mapping[str, str]) -> Context:
    """The context a carrier's W3C headers describe (an empty one when they describe none)."""
    if "tracestate" in carrier or "baggage" in carrier or not _default_propagation():
        return propagate.extract(carrier)
    header = carrier.get(TRACEPARENT)
    if not header:
        return Context()
    if not isinstance(header, str) or len(header) > _MAX_LENGTH:
        return propagate.extract(carrier)  # the propagator's own handling (and warning)
    match = _TRACEPARENT_RE.match(header)
    if match is None:
        return Context()
    version, trace_id, span_id, flags, rest = match.groups()
    if trace_id == _NO_TRACE_ID or span_id == _NO_SPAN_ID or version == "ff" or (version == "00" and rest):
        return Context()
    span_context = trace.SpanContext(
        trace_id=int(trace_id, 16),
        span_id=int(span_id, 16),
        is_remote=True,
        trace_flags=trace.TraceFlags(int(flags, 16)),
        trace_state=None,
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context), Context())


def inject(carrier: MutableMapping[str, str], context: Context | None = None) -> None:
    """Writes the context's span (default: the current one) into the carrier as `traceparent`."""
    span_context = trace.get_current_span(context).get_span_context()
    if span_context.trace_state or baggage.get_all(context) or not _default_propagation():
        propagate.inject(carrier, context=context)
        return
    if span_context == trace.INVALID_SPAN_CONTEXT:
        return
    carrier[TRACEPARENT] = (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{span_context.trace_flags:02x}"
    )
