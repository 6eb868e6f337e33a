"""Reading one trace back: from the local span store or an OTLP backend's query API, as a tree.

Spans come from one of two places:

- the local span store, JSON lines under ``$YIJU_DATA_DIR/spans/*.jsonl`` (what
  :mod:`yiju.common.telemetry` writes through :class:`SpanFile` when no OTLP collector is configured).
  It is bounded: a service's file is rotated once it would pass ``YIJU_SPAN_FILE_MAX_MB`` (32) into
  ``NAME.1.jsonl``, ``NAME.2.jsonl`` ..., and only ``YIJU_SPAN_FILE_KEEP`` (3) rotated files are kept, so
  a service's spans never take more than max x (keep + 1) on disk; the oldest traces go first;
- with ``YIJU_TRACE_QUERY_URL`` set, a trace backend's HTTP query API: Jaeger (``GET /api/traces/{id}``)
  or Tempo (``GET /api/traces/{id}``, OTLP JSON). The URL is the backend's base URL, or a full URL with a
  ``{trace_id}`` placeholder.

Every span becomes a :class:`Span` whose ``start`` is **epoch milliseconds** (UTC, a float with
microsecond precision) and ``duration_ms`` milliseconds. :class:`Trace` orders the spans as a tree
(children by start time; spans whose parent is missing become roots) for waterfalls: the ``yiju trace``
command and the intent service's ``GET /v1/orders/{id}/trace``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fcntl
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

TRACE_QUERY_ENV = "YIJU_TRACE_QUERY_URL"
DEFAULT_TIMEOUT_S = 5.0
SPAN_FILE_MAX_MB_ENV = "YIJU_SPAN_FILE_MAX_MB"
SPAN_FILE_KEEP_ENV = "YIJU_SPAN_FILE_KEEP"
DEFAULT_SPAN_FILE_MAX_MB = 32.0
DEFAULT_SPAN_FILE_KEEP = 3


class TraceQueryError(Exception):
    """The trace backend could not be asked, or answered something that is not a trace."""


@dataclass(frozen=True, slots=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    start: float
    """Epoch milliseconds (UTC)."""
    duration_ms: float
    attributes: dict[str, Any] = field(default_factory=dict)
    kind: str = ""
    status: str = ""

    @property
    def end(self) -> float:
        return self.start + self.duration_ms

    def to_dict(self) -> dict[str, Any]:
        """The public shape (``yiju trace --json``): ``start`` in epoch milliseconds."""
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "name": self.name,
            "service": self.service,
            "start": self.start,
            "duration_ms": self.duration_ms,
            "attributes": self.attributes,
        }


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a waterfall: the span, its depth in the tree and its offset from the trace's start."""

    span: Span
    depth: int
    offset_ms: float


@dataclass
class Trace:
    trace_id: str
    spans: list[Span]
    source: str = "local"
    """``local`` (the span store) or ``remote`` (``YIJU_TRACE_QUERY_URL``)."""

    @property
    def start(self) -> float:
        return min((s.start for s in self.spans), default=0.0)

    @property
    def duration_ms(self) -> float:
        if not self.spans:
            return 0.0
        return round(max(s.end for s in self.spans) - self.start, 3)

    @property
    def services(self) -> list[str]:
        """Services in the order they first appear."""
        return list(dict.fromkeys(s.service for s in sorted(self.spans, key=lambda s: s.start)))

    def rows(self) -> list[Row]:
        """Depth-first, children in start order; a span whose parent is not here is a root."""
        by_id = {s.span_id: s for s in self.spans}
        children: dict[str | None, list[Span]] = {}
        for span in self.spans:
            parent = span.parent_id if span.parent_id in by_id and span.parent_id != span.span_id else None
            children.setdefault(parent, []).append(span)
        for siblings in children.values():
            siblings.sort(key=lambda s: (s.start, s.name))
        origin = self.start
        rows: list[Row] = []
        seen: set[str] = set()

        def walk(span: Span, depth: int) -> None:
            if span.span_id in seen:  # a malformed trace with a cycle
                return
            seen.add(span.span_id)
            rows.append(Row(span, depth, round(span.start - origin, 3)))
            for child in children.get(span.span_id, ()):
                walk(child, depth + 1)

        for root in children.get(None, ()):
            walk(root, 0)
        for span in sorted(self.spans, key=lambda s: s.start):  # spans only reachable through a cycle
            if span.span_id not in seen:
                walk(span, 0)
        return rows

    def to_dict(self) -> dict[str, Any]:
        """``{"trace_id", "spans": [...]}``, spans in waterfall order."""
        return {"trace_id": self.trace_id, "spans": [r.span.to_dict() for r in self.rows()]}


def _dedupe(spans: Iterable[Span]) -> list[Span]:
    out: dict[str, Span] = {}
    for span in spans:
        out.setdefault(span.span_id, span)
    return list(out.values())


# --- the local span store --------------------------------------------------------------------------------


def span_from_local(record: Mapping[str, Any]) -> Span:
    """A span from one line of the local store (see ``telemetry.span_to_dict``)."""
    return Span(
        trace_id=str(record["trace_id"]),
        span_id=str(record["span_id"]),
        parent_id=record.get("parent_id") or None,
        name=str(record.get("name", "")),
        service=str(record.get("service", "")),
        start=round(int(record.get("start_ns", 0)) / 1e6, 3),
        duration_ms=float(record.get("duration_ms", 0.0)),
        attributes=dict(record.get("attributes") or {}),
        kind=str(record.get("kind", "")),
        status=str(record.get("status", "")),
    )


def spans_dir(data_dir: Path | str) -> Path:
    return Path(data_dir) / "spans"


@dataclass(frozen=True, slots=True)
class SpanFileLimits:
    """How much of the local span store one service may keep (see the module docstring)."""

    max_bytes: int = int(DEFAULT_SPAN_FILE_MAX_MB * 1024 * 1024)
    keep: int = DEFAULT_SPAN_FILE_KEEP

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SpanFileLimits:
        """``YIJU_SPAN_FILE_MAX_MB`` (a number, may be fractional) and ``YIJU_SPAN_FILE_KEEP``."""
        env = os.environ if env is None else env
        try:
            max_mb = float(env.get(SPAN_FILE_MAX_MB_ENV) or DEFAULT_SPAN_FILE_MAX_MB)
            keep = int(env.get(SPAN_FILE_KEEP_ENV) or DEFAULT_SPAN_FILE_KEEP)
        except ValueError as exc:
            raise ValueError(f"{SPAN_FILE_MAX_MB_ENV} / {SPAN_FILE_KEEP_ENV}: {exc}") from exc
        if max_mb <= 0 or keep < 0:
            raise ValueError(f"{SPAN_FILE_MAX_MB_ENV} must be > 0 and {SPAN_FILE_KEEP_ENV} >= 0")
        return cls(max(int(max_mb * 1024 * 1024), 1), keep)


def rotated_path(path: Path, index: int) -> Path:
    """``spans/intent.jsonl`` -> ``spans/intent.<index>.jsonl`` (still matched by ``*.jsonl``)."""
    return path.with_name(f"{path.stem}.{index}{path.suffix}")


class SpanFile:
    """An append-only span file, rotated by size and trimmed to ``keep`` rotated files.

    Safe for several processes appending to the same file (a service's replicas on one machine): each
    batch is one ``write`` on an ``O_APPEND`` descriptor, so lines never interleave; one process at a
    time rotates (an exclusive ``flock`` on the file being rotated), and a process whose file was
    rotated by another notices (the path names another inode) and reopens it."""

    def __init__(self, path: Path, limits: SpanFileLimits | None = None) -> None:
        self.path = path
        self.limits = limits or SpanFileLimits.from_env()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _is_current(self) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(self._fd).st_ino
        except FileNotFoundError:
            return False

    def _reopen(self) -> None:
        os.close(self._fd)
        self._fd = self._open()

    def _rotate(self) -> None:
        """NAME.jsonl -> NAME.1.jsonl, NAME.1 -> NAME.2 ..., dropping what would pass ``keep``."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            if not self._is_current():  # another process rotated it while we waited
                return
            keep = self.limits.keep
            with contextlib.suppress(FileNotFoundError):
                os.unlink(rotated_path(self.path, keep) if keep else self.path)
            for index in range(keep - 1, 0, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(rotated_path(self.path, index), rotated_path(self.path, index + 1))
            if keep:
                os.replace(self.path, rotated_path(self.path, 1))
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def append(self, data: bytes) -> None:
        """Appends whole lines; rotates first when they would take the file past the size limit."""
        if not data:
            return
        with self._lock:
            if not self._is_current():
                self._reopen()
            size = os.fstat(self._fd).st_size
            if size and size + len(data) > self.limits.max_bytes:
                self._rotate()
                self._reopen()
            view = memoryview(data)
            while view:  # a regular file takes it in one write; a full disk raises
                view = view[os.write(self._fd, view) :]

    def files(self) -> list[Path]:
        """The current file and its rotated ones that exist, newest first."""
        candidates = [self.path, *(rotated_path(self.path, i) for i in range(1, self.limits.keep + 1))]
        return [p for p in candidates if p.exists()]

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


_ROTATED = re.compile(r"^(?P<stem>.+?)(?:\.(?P<index>\d+))?$")


def _read_order(path: Path) -> tuple[str, int]:
    """Oldest first within a service: NAME.3, NAME.2, NAME.1, NAME (the current file)."""
    match = _ROTATED.match(path.stem)
    stem, index = (match["stem"], int(match["index"] or 0)) if match else (path.stem, 0)
    return stem, -index


def read_local(directory: Path | str, trace_id: str) -> list[Span]:
    """Every span of ``trace_id`` in ``directory/*.jsonl`` (unreadable lines are skipped)."""
    trace_id = trace_id.lower()
    needle = trace_id.encode()
    spans: list[Span] = []
    for path in sorted(Path(directory).glob("*.jsonl"), key=_read_order):
        try:
            with path.open("rb") as lines:
                for line in lines:
                    if needle not in line:
                        continue
                    try:
                        record = orjson.loads(line)
                        if record.get("trace_id") == trace_id:
                            spans.append(span_from_local(record))
                    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                        continue  # a line cut short by a crash
        except OSError:
            continue
    return _dedupe(spans)


# --- trace backends --------------------------------------------------------------------------------------


def query_url(base: str, trace_id: str) -> str:
    """``base`` with ``{trace_id}`` filled in, or ``base/api/traces/{trace_id}``."""
    if "{trace_id}" in base:
        return base.replace("{trace_id}", trace_id)
    return f"{base.rstrip('/')}/api/traces/{trace_id}"


def _hex_id(value: Any, size: int) -> str:
    """OTLP JSON ids are hex (OTLP/HTTP JSON) or base64 (protobuf JSON mapping, e.g. Tempo)."""
    text = str(value or "")
    if len(text) == size * 2 and all(c in "0123456789abcdefABCDEF" for c in text):
        return text.lower()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return text.lower()
    return raw.hex() if len(raw) == size else text.lower()


def _otlp_value(value: Mapping[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        return int(value["intValue"])
    if "arrayValue" in value:
        return [_otlp_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return _otlp_attributes(value["kvlistValue"].get("values", []))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def _otlp_attributes(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {item["key"]: _otlp_value(item.get("value", {})) for item in items if "key" in item}


_OTLP_KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_OTLP_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


def _otlp_enum(value: Any, names: Mapping[int, str], prefix: str) -> str:
    if isinstance(value, int):
        return names.get(value, "")
    return str(value or "").removeprefix(prefix)


def parse_otlp(doc: Mapping[str, Any]) -> list[Span]:
    """OTLP JSON: ``resourceSpans`` (OTLP, Tempo v2 under ``trace``) or ``batches`` (Tempo v1)."""
    body = doc.get("trace", doc)
    spans: list[Span] = []
    for resource_spans in body.get("resourceSpans") or body.get("batches") or []:
        resource = _otlp_attributes(resource_spans.get("resource", {}).get("attributes", []))
        service = str(resource.get("service.name", ""))
        scopes = resource_spans.get("scopeSpans") or resource_spans.get("instrumentationLibrarySpans") or []
        for scope in scopes:
            for raw in scope.get("spans", []):
                start_ns = int(raw.get("startTimeUnixNano", 0))
                end_ns = int(raw.get("endTimeUnixNano", start_ns))
                parent = _hex_id(raw.get("parentSpanId"), 8) if raw.get("parentSpanId") else None
                spans.append(
                    Span(
                        trace_id=_hex_id(raw.get("traceId"), 16),
                        span_id=_hex_id(raw.get("spanId"), 8),
                        parent_id=parent,
                        name=str(raw.get("name", "")),
                        service=service,
                        start=round(start_ns / 1e6, 3),
                        duration_ms=round((end_ns - start_ns) / 1e6, 3),
                        attributes=_otlp_attributes(raw.get("attributes", [])),
                        kind=_otlp_enum(raw.get("kind"), _OTLP_KINDS, "SPAN_KIND_"),
                        status=_otlp_enum(raw.get("status", {}).get("code"), _OTLP_STATUS, "STATUS_CODE_"),
                    )
                )
    return _dedupe(spans)


def parse_jaeger(doc: Mapping[str, Any]) -> list[Span]:
    """Jaeger's query API: ``{"data": [{"spans": [...], "processes": {...}}]}`` (times in microseconds)."""
    spans: list[Span] = []
    for item in doc.get("data") or []:
        processes = item.get("processes", {})
        for raw in item.get("spans", []):
            tags = {t["key"]: t.get("value") for t in raw.get("tags", []) if "key" in t}
            parents = [r for r in raw.get("references", []) if r.get("refType") == "CHILD_OF"]
            parent = parents[0]["spanID"] if parents else (raw.get("parentSpanID") or None)
            process = processes.get(raw.get("processID", ""), {})
            status = "ERROR" if tags.get("error") in (True, "true") else str(tags.get("otel.status_code", ""))
            spans.append(
                Span(
                    trace_id=str(raw.get("traceID", "")).lower().zfill(32),
                    span_id=str(raw.get("spanID", "")).lower().zfill(16),
                    parent_id=str(parent).lower().zfill(16) if parent else None,
                    name=str(raw.get("operationName", "")),
                    service=str(process.get("serviceName", "")),
                    start=round(int(raw.get("startTime", 0)) / 1e3, 3),
                    duration_ms=round(int(raw.get("duration", 0)) / 1e3, 3),
                    attributes={k: v for k, v in tags.items() if k not in ("span.kind", "otel.status_code")},
                    kind=str(tags.get("span.kind", "")).upper(),
                    status=status,
                )
            )
    return _dedupe(spans)


def parse_remote(doc: Any) -> list[Span]:
    """Spans from a Jaeger or Tempo/OTLP answer, whichever it is."""
    if not isinstance(doc, Mapping):
        raise TraceQueryError("the trace backend answered JSON that is not an object")
    if "data" in doc:
        return parse_jaeger(doc)
    if any(k in doc for k in ("resourceSpans", "batches", "trace")):
        return parse_otlp(doc)
    raise TraceQueryError(f"not a Jaeger or OTLP trace (keys: {', '.join(sorted(doc))})")


def _decode_answer(response: httpx.Response) -> list[Span]:
    if response.status_code == 404:
        return []
    if response.status_code >= 400:
        raise TraceQueryError(f"{response.request.url} answered HTTP {response.status_code}")
    try:
        return parse_remote(response.json())
    except ValueError as exc:
        raise TraceQueryError(f"{response.request.url} answered something that is not JSON") from exc


def fetch_remote(
    base: str,
    trace_id: str,
    timeout: float = DEFAULT_TIMEOUT_S,
    *,
    transport: httpx.BaseTransport | None = None,
) -> list[Span]:
    """The trace's spans from a Jaeger/Tempo query API (blocking); an unknown trace has no spans."""
    headers = {"Accept": "application/json"}
    try:
        with httpx.Client(timeout=timeout, headers=headers, transport=transport) as client:
            return _decode_answer(client.get(query_url(base, trace_id)))
    except httpx.HTTPError as exc:
        raise TraceQueryError(f"cannot query {query_url(base, trace_id)}: {exc}") from exc


async def afetch_remote(
    base: str,
    trace_id: str,
    timeout: float = DEFAULT_TIMEOUT_S,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Span]:
    """:func:`fetch_remote` for asyncio."""
    headers = {"Accept": "application/json"}
    try:
        async with httpx.AsyncClient(timeout=timeout, headers=headers, transport=transport) as client:
            return _decode_answer(await client.get(query_url(base, trace_id)))
    except httpx.HTTPError as exc:
        raise TraceQueryError(f"cannot query {query_url(base, trace_id)}: {exc}") from exc


# --- one entry point -------------------------------------------------------------------------------------


def load_trace(trace_id: str, *, data_dir: Path | str, query: str = "") -> Trace:
    """The trace from ``query`` (a backend URL) when given, else from the local span store."""
    trace_id = trace_id.strip().lower()
    if query:
        return Trace(trace_id, fetch_remote(query, trace_id), source="remote")
    return Trace(trace_id, read_local(spans_dir(data_dir), trace_id), source="local")


async def aload_trace(trace_id: str, *, data_dir: Path | str, query: str = "") -> Trace:
    """:func:`load_trace` for asyncio (the file scan runs in a thread)."""
    trace_id = trace_id.strip().lower()
    if query:
        return Trace(trace_id, await afetch_remote(query, trace_id), source="remote")
    spans = await asyncio.to_thread(read_local, spans_dir(data_dir), trace_id)
    return Trace(trace_id, spans, source="local")


def collector_configured(env: Mapping[str, str] | None = None) -> bool:
    """True when services export to an OTLP collector (so the local store stays empty)."""
    env = os.environ if env is None else env
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
