"""Reading traces back (local span store, Jaeger, Tempo), the waterfall tree, and ``yiju trace``."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from yiju.cli import exitcodes
from yiju.cli.commands.trace import bar
from yiju.cli.main import main
from yiju.common import trace_store
from yiju.common.telemetry import SpanFileExporter
from yiju.common.trace_store import (
    Span,
    Trace,
    TraceQueryError,
    fetch_remote,
    load_trace,
    parse_jaeger,
    parse_otlp,
    parse_remote,
    query_url,
    read_local,
)
from yiju.sdk import NO_RETRY, YijuClient
from yiju.sdk.testing import FakeIntentService

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"  # the fake service's orders carry this trace id
OTHER = "0af7651916cd43dd8448eb211c80319c"
T0_NS = 1_732_838_400_000_000_000
PUBLIC_KEYS = ["trace_id", "span_id", "parent_id", "name", "service", "start", "duration_ms", "attributes"]


def local_span(
    span_id: str,
    parent: str | None,
    name: str,
    service: str,
    start_ms: float,
    duration_ms: float,
    **extra: Any,
) -> dict[str, Any]:
    """One line of the local span store, as telemetry.span_to_dict writes it."""
    return {
        "trace_id": extra.pop("trace_id", TRACE),
        "span_id": span_id,
        "parent_id": parent,
        "name": name,
        "service": service,
        "kind": extra.pop("kind", "INTERNAL"),
        "start_ns": T0_NS + int(start_ms * 1e6),
        "duration_ms": duration_ms,
        "status": extra.pop("status", "UNSET"),
        "attributes": extra.pop("attributes", {}),
    }


def write_store(data_dir: Path) -> None:
    spans = data_dir / "spans"
    spans.mkdir(parents=True)
    intent = [
        local_span("a" * 16, None, "POST /v1/intents", "intent", 0, 30, kind="SERVER"),
        local_span("b" * 16, "a" * 16, "send yiju.intent.accepted.v1", "intent", 20, 1, kind="PRODUCER"),
        local_span("f" * 16, "e" * 16, "process yiju.plan.created.v1", "intent", 90, 2, kind="CONSUMER"),
        local_span("9" * 16, None, "GET /v1/orders/x", "intent", 5, 1, trace_id=OTHER),
    ]
    planning = [
        local_span(
            "c" * 16,
            "b" * 16,
            "process yiju.intent.accepted.v1",
            "planning",
            40,
            50,
            kind="CONSUMER",
            attributes={"messaging.system": "kafka", "messaging.kafka.offset": 7},
        ),
        local_span("e" * 16, "c" * 16, "send yiju.plan.created.v1", "planning", 80, 1, kind="PRODUCER"),
        local_span("d" * 16, "c" * 16, "ParseIntent", "planning", 45, 20, kind="CLIENT", status="ERROR"),
    ]
    lines = [json.dumps(s) for s in intent]
    lines.insert(2, '{"trace_id": "' + TRACE + '", "span_id": broken')  # a line cut short by a crash
    (spans / "intent.jsonl").write_text("\n".join(lines) + "\n")
    (spans / "planning.jsonl").write_text("\n".join(json.dumps(s) for s in planning) + "\n")
    (spans / "notes.txt").write_text(TRACE)


# --- the local store and the tree ------------------------------------------------------------------------


def test_read_local_finds_the_trace_across_files_and_skips_broken_lines(tmp_path: Path) -> None:
    write_store(tmp_path)
    spans = read_local(tmp_path / "spans", TRACE.upper())
    assert {s.span_id[0] for s in spans} == set("abcdef")
    root = next(s for s in spans if s.parent_id is None)
    assert root.start == pytest.approx(T0_NS / 1e6) and root.duration_ms == 30
    assert read_local(tmp_path / "missing", TRACE) == []


def test_rows_are_depth_first_with_children_in_start_order(tmp_path: Path) -> None:
    write_store(tmp_path)
    trace = load_trace(TRACE, data_dir=tmp_path)
    rows = trace.rows()
    assert [(r.span.span_id[0], r.depth) for r in rows] == [
        ("a", 0),
        ("b", 1),
        ("c", 2),
        ("d", 3),  # ParseIntent starts (45) before the send (80)
        ("e", 3),
        ("f", 4),
    ]
    assert [r.offset_ms for r in rows][:3] == [0, 20, 40]
    assert trace.duration_ms == 92 and trace.services == ["intent", "planning"]
    assert trace.source == "local"


def test_spans_whose_parent_is_missing_become_roots_and_cycles_end() -> None:
    spans = [
        Span(TRACE, "1" * 16, "f" * 16, "orphan", "intent", 10.0, 1.0),
        Span(TRACE, "2" * 16, "3" * 16, "loop-a", "intent", 5.0, 1.0),
        Span(TRACE, "3" * 16, "2" * 16, "loop-b", "intent", 6.0, 1.0),
    ]
    rows = Trace(TRACE, spans).rows()
    assert sorted(r.span.name for r in rows) == ["loop-a", "loop-b", "orphan"]
    assert rows[0].span.name == "orphan" and rows[0].depth == 0


def test_the_public_json_has_exactly_the_documented_fields(tmp_path: Path) -> None:
    write_store(tmp_path)
    doc = load_trace(TRACE, data_dir=tmp_path).to_dict()
    assert list(doc) == ["trace_id", "spans"] and doc["trace_id"] == TRACE
    assert all(list(span) == PUBLIC_KEYS for span in doc["spans"])
    first = doc["spans"][0]
    assert first["start"] == pytest.approx(T0_NS / 1e6)  # epoch milliseconds
    assert doc["spans"][2]["attributes"]["messaging.kafka.offset"] == 7


def test_what_telemetry_writes_reads_back(tmp_path: Path) -> None:
    """The span store's format is telemetry.span_to_dict: write real spans, read them back."""
    provider = TracerProvider(resource=Resource.create({"service.name": "planning"}))
    exporter = SpanFileExporter(tmp_path / "spans" / "planning.jsonl")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("outer", kind=SpanKind.CONSUMER) as outer:
        outer.set_attribute("messaging.system", "kafka")
        with tracer.start_as_current_span("inner"):
            pass
    provider.shutdown()
    trace_id = f"{outer.get_span_context().trace_id:032x}"
    trace = load_trace(trace_id, data_dir=tmp_path)
    rows = trace.rows()
    assert [(r.span.name, r.depth, r.span.service) for r in rows] == [
        ("outer", 0, "planning"),
        ("inner", 1, "planning"),
    ]
    assert rows[0].span.kind == "CONSUMER" and rows[0].span.attributes == {"messaging.system": "kafka"}
    assert rows[0].span.start > 1.6e12  # epoch ms, not ns


# --- trace backends --------------------------------------------------------------------------------------


JAEGER = {
    "data": [
        {
            "traceID": TRACE,
            "spans": [
                {
                    "traceID": TRACE,
                    "spanID": "a" * 16,
                    "operationName": "POST /v1/intents",
                    "references": [],
                    "startTime": 1_732_838_400_000_000,
                    "duration": 30_000,
                    "tags": [{"key": "span.kind", "type": "string", "value": "server"}],
                    "processID": "p1",
                },
                {
                    "traceID": TRACE,
                    "spanID": "b" * 16,
                    "operationName": "process yiju.intent.accepted.v1",
                    "references": [{"refType": "CHILD_OF", "traceID": TRACE, "spanID": "a" * 16}],
                    "startTime": 1_732_838_400_040_000,
                    "duration": 2_500,
                    "tags": [
                        {"key": "messaging.kafka.offset", "type": "int64", "value": 3},
                        {"key": "error", "type": "bool", "value": True},
                    ],
                    "processID": "p2",
                },
            ],
            "processes": {"p1": {"serviceName": "intent"}, "p2": {"serviceName": "planning"}},
        }
    ]
}


def _b64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode()


def otlp_doc(*, encode: bool, key: str) -> dict[str, Any]:
    ids = _b64 if encode else (lambda h: h)
    span = {
        "traceId": ids(TRACE),
        "spanId": ids("b" * 16),
        "parentSpanId": ids("a" * 16),
        "name": "process yiju.intent.accepted.v1",
        "kind": "SPAN_KIND_CONSUMER" if encode else 5,
        "startTimeUnixNano": str(T0_NS + 40_000_000),
        "endTimeUnixNano": str(T0_NS + 42_500_000),
        "attributes": [
            {"key": "messaging.system", "value": {"stringValue": "kafka"}},
            {"key": "messaging.kafka.offset", "value": {"intValue": "3"}},
        ],
        "status": {"code": 2},
    }
    root = {
        "traceId": ids(TRACE),
        "spanId": ids("a" * 16),
        "name": "POST /v1/intents",
        "kind": 2,
        "startTimeUnixNano": str(T0_NS),
        "endTimeUnixNano": str(T0_NS + 30_000_000),
    }
    scope_key = "instrumentationLibrarySpans" if key == "batches" else "scopeSpans"

    def resource(service: str, spans: list[dict]) -> dict[str, Any]:
        return {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            scope_key: [{"spans": spans}],
        }

    return {key: [resource("intent", [root]), resource("planning", [span])]}


def check_two_spans(spans: list[Span]) -> None:
    trace = Trace(TRACE, spans)
    rows = trace.rows()
    assert [(r.span.name, r.span.service, r.depth) for r in rows] == [
        ("POST /v1/intents", "intent", 0),
        ("process yiju.intent.accepted.v1", "planning", 1),
    ]
    child = rows[1].span
    assert child.trace_id == TRACE and child.parent_id == "a" * 16
    assert rows[1].offset_ms == 40 and child.duration_ms == 2.5
    assert child.attributes["messaging.kafka.offset"] == 3
    assert child.status == "ERROR"
    assert rows[0].span.start == pytest.approx(T0_NS / 1e6)


def test_jaeger_answers_become_spans() -> None:
    spans = parse_jaeger(JAEGER)
    check_two_spans(spans)
    assert spans[0].kind == "SERVER"


@pytest.mark.parametrize(("encode", "key"), [(True, "batches"), (False, "resourceSpans")])
def test_tempo_and_otlp_answers_become_spans(encode: bool, key: str) -> None:
    spans = parse_otlp(otlp_doc(encode=encode, key=key))
    check_two_spans(spans)
    assert {s.kind for s in spans} == {"SERVER", "CONSUMER"}


def test_tempo_v2_wraps_the_trace() -> None:
    check_two_spans(parse_remote({"trace": otlp_doc(encode=True, key="resourceSpans")}))


def test_an_unknown_answer_is_an_error() -> None:
    with pytest.raises(TraceQueryError):
        parse_remote({"something": []})
    with pytest.raises(TraceQueryError):
        parse_remote([1, 2])


def test_query_url() -> None:
    assert query_url("http://jaeger:16686/", TRACE) == f"http://jaeger:16686/api/traces/{TRACE}"
    assert query_url("http://tempo:3200/api/v2/traces/{trace_id}", TRACE) == (
        f"http://tempo:3200/api/v2/traces/{TRACE}"
    )


def test_fetch_remote_asks_the_backend() -> None:
    seen: list[str] = []

    def backend(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if TRACE in request.url.path:
            return httpx.Response(200, json=JAEGER)
        if "500" in request.url.host:
            return httpx.Response(500)
        return httpx.Response(404, json={"errors": [{"msg": "trace not found"}]})

    transport = httpx.MockTransport(backend)
    check_two_spans(fetch_remote("http://jaeger:16686", TRACE, transport=transport))
    assert seen == [f"http://jaeger:16686/api/traces/{TRACE}"]
    assert fetch_remote("http://jaeger:16686", OTHER, transport=transport) == []
    with pytest.raises(TraceQueryError, match="HTTP 500"):
        fetch_remote("http://tempo500:3200", OTHER, transport=transport)


# --- yiju trace ------------------------------------------------------------------------------------------


class Cli:
    def __init__(self, data_dir: Path) -> None:
        self.fake = FakeIntentService()
        self.order_id = self.fake.add_order(["COMPLETED"])
        self.env = {"YIJU_DATA_DIR": str(data_dir)}

    def factory(self, base_url: str, token: str | None) -> YijuClient:
        return YijuClient(base_url, token=token, transport=self.fake.transport(), retry=NO_RETRY)

    def __call__(self, *argv: str) -> int:
        return main(list(argv), client_factory=self.factory, env=self.env)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    write_store(tmp_path)
    return Cli(tmp_path)


def test_trace_json_prints_the_documented_shape(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("trace", cli.order_id, "--user", "u-1002", "--json") == exitcodes.OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["trace_id"] == TRACE and [s["span_id"][0] for s in doc["spans"]] == list("abcdef")
    assert all(list(span) == PUBLIC_KEYS for span in doc["spans"])
    assert cli.fake.paths() == [f"GET /v1/orders/{cli.order_id}"]


def test_trace_draws_a_waterfall(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("trace", cli.order_id) == exitcodes.OK
    out = capsys.readouterr().out
    assert f"Trace {TRACE}" in out and "6 spans, 2 services, 92.0 ms" in out
    lines = out.splitlines()
    root = next(line for line in lines if "POST /v1/intents" in line)
    nested = next(line for line in lines if "send yiju.plan.created.v1" in line)
    assert nested.index("send") > root.index("POST")  # indented under its parents
    assert "planning" in nested and "+80.0" in nested and "█" in nested


def test_a_trace_id_skips_the_api(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("trace", TRACE, "--json") == exitcodes.OK
    assert len(json.loads(capsys.readouterr().out)["spans"]) == 6
    assert cli.fake.paths() == []


def test_no_spans_is_an_error_that_says_where_it_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = Cli(tmp_path)
    cli.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://collector:4318"
    assert cli("trace", cli.order_id, "--wait", "0.1") == exitcodes.API_ERROR
    err = capsys.readouterr().err
    assert str(tmp_path / "spans") in err and "YIJU_TRACE_QUERY_URL" in err


def test_the_query_url_sends_the_cli_to_the_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked: list[tuple[str, str]] = []

    def fake_fetch(base: str, trace_id: str, timeout: float = 5.0) -> list[Span]:
        asked.append((base, trace_id))
        return parse_jaeger(JAEGER)

    monkeypatch.setattr(trace_store, "fetch_remote", fake_fetch)
    cli = Cli(tmp_path)
    cli.env["YIJU_TRACE_QUERY_URL"] = "http://jaeger:16686"
    assert cli("trace", cli.order_id, "--json") == exitcodes.OK
    assert asked == [("http://jaeger:16686", TRACE)]
    assert len(json.loads(capsys.readouterr().out)["spans"]) == 2


def test_bars_stay_inside_the_axis() -> None:
    assert bar(0, 100, 100, 10) == "█" * 10
    assert bar(50, 0.001, 100, 10) == "     █    "
    assert bar(100, 5, 100, 10) == "         █"
    assert bar(0, 0, 0, 4) == "█   "


def test_otlp_ids_in_any_encoding() -> None:
    from yiju.common.trace_store import _hex_id

    assert _hex_id(TRACE.upper(), 16) == TRACE  # Tempo may answer upper-case hex
    assert _hex_id(_b64(TRACE), 16) == TRACE  # or base64 (protobuf JSON mapping)
    assert _hex_id("a" * 16, 8) == "a" * 16
