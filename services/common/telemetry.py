"""OpenTelemetry: one trace per sentence across HTTP, Kafka and gRPC.

With OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set, spans go to that
collector over OTLP/HTTP; otherwise to a local span store: JSON lines under DATA_DIR/spans/, which
`yiju trace` reads, so tracing works on a laptop with no collector. Which traces are recorded is
yiju.common.sampling's choice (YIJU_TRACE_SAMPLER / OTEL_TRACES_SAMPLER; default: every one).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from yiju.common import trace_context
from yiju.common.logs import redact
from yiju.common.sampling import sampler_from_env
from yiju.common.trace_store import SpanFile, SpanFileLimits

_provider: TracerProvider | None = None


class SpanFileExporter(SpanExporter):
    """Appends finished spans as JSON lines to one file per service, rotated and trimmed by size
    (``YIJU_SPAN_FILE_MAX_MB``, ``YIJU_SPAN_FILE_KEEP``: see :class:`yiju.common.trace_store.SpanFile`)."""

    def __init__(self, path: Path, limits: SpanFileLimits | None = None) -> None:
        self._file = SpanFile(path, limits)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._file.append(b"".join(orjson.dumps(span_to_dict(s), default=str) + b"\n" for s in spans))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._file.close()


def span_to_dict(span: ReadableSpan) -> dict:
    ctx = span.get_span_context()
    start = span.start_time or 0
    end = span.end_time or start
    return {
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "name": span.name,
        "service": span.resource.attributes.get("service.name", ""),
        "kind": span.kind.name,
        "start_ns": start,
        "duration_ms": round((end - start) / 1e6, 3),
        "status": span.status.status_code.name,
        "attributes": {k: redact(k, v) for k, v in (span.attributes or {}).items()},
    }


def setup_tracing(service: str, data_dir: Path) -> TracerProvider:
    global _provider
    if _provider is not None:
        return _provider
    resource = Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME", service), "service.namespace": "yiju"}
    )
    # Which sentences are traced: every one by default, a ratio in production (yiju.common.sampling).
    provider = TracerProvider(resource=resource, sampler=sampler_from_env())
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter: SpanExporter = OTLPSpanExporter()
    else:
        exporter = SpanFileExporter(data_dir / "spans" / f"{service}.jsonl")
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def shutdown_tracing() -> None:
    if _provider is not None:
        _provider.shutdown()


def tracer(name: str = "yiju") -> trace.Tracer:
    return trace.get_tracer(name)


def inject(carrier: dict[str, str], context: otel_context.Context | None = None) -> dict[str, str]:
    """Writes the context (default: the current one) as W3C traceparent/tracestate into carrier."""
    trace_context.inject(carrier, context)
    return carrier


def extract(carrier: Mapping[str, str]) -> otel_context.Context:
    return trace_context.extract(carrier)


def current_trace_id() -> str:
    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else ""
