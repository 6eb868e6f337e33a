"""The local span store is bounded: each service's file is rotated by size and only a few rotated files
are kept (issue 14, item 6), while what is kept still reads back as traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from yiju.common.telemetry import SpanFileExporter
from yiju.common.trace_store import SpanFile, SpanFileLimits, read_local, rotated_path

TRACE = "ab" * 16


def span_line(n: int, trace_id: str = TRACE) -> bytes:
    record = {
        "trace_id": trace_id,
        "span_id": f"{n:016x}",
        "parent_id": None,
        "name": f"span-{n}",
        "service": "intent",
        "kind": "INTERNAL",
        "start_ns": 1_700_000_000_000_000_000 + n,
        "duration_ms": 1.0,
        "status": "UNSET",
        "attributes": {"pad": "x" * 100},
    }
    return json.dumps(record).encode() + b"\n"


def test_a_service_never_keeps_more_than_max_times_keep_plus_one(tmp_path: Path) -> None:
    limits = SpanFileLimits(max_bytes=4096, keep=2)
    spans = SpanFile(tmp_path / "spans" / "intent.jsonl", limits)
    line = len(span_line(0))
    for n in range(500):  # ~100 KB of spans: 25 times the limit
        spans.append(span_line(n))
    spans.close()
    files = sorted((tmp_path / "spans").glob("*.jsonl"))
    assert [p.name for p in files] == ["intent.1.jsonl", "intent.2.jsonl", "intent.jsonl"]
    assert all(p.stat().st_size <= limits.max_bytes for p in files)
    assert sum(p.stat().st_size for p in files) <= limits.max_bytes * (limits.keep + 1)
    kept = read_local(tmp_path / "spans", TRACE)
    names = {s.name for s in kept}
    assert "span-499" in names and "span-0" not in names  # the newest stay, the oldest went first
    assert len(kept) >= 2 * (limits.max_bytes // line)  # every kept line still parses


def test_replicas_sharing_a_file_lose_no_line_and_rotate_once(tmp_path: Path) -> None:
    """Two writers on one path (a service's two replicas on one machine): whole lines only, and a file
    one of them rotated is reopened by the other instead of growing the rotated file."""
    path = tmp_path / "spans" / "intent.jsonl"
    limits = SpanFileLimits(max_bytes=2048, keep=100)  # room for every line: nothing is trimmed
    first, second = SpanFile(path, limits), SpanFile(path, limits)
    for n in range(300):
        (first if n % 2 else second).append(span_line(n))
    first.close()
    second.close()
    files = list((tmp_path / "spans").glob("*.jsonl"))
    assert all(p.stat().st_size <= limits.max_bytes for p in files)
    assert {s.name for s in read_local(tmp_path / "spans", TRACE)} == {f"span-{n}" for n in range(300)}
    line = len(span_line(0))
    rotated = [p for p in files if p != path]
    assert rotated and not rotated_path(path, limits.keep).exists()
    # Rotated once per fill, never twice in a row: every rotated file was full.
    assert all(p.stat().st_size > limits.max_bytes - line for p in rotated)


def test_keep_zero_truncates_in_place(tmp_path: Path) -> None:
    path = tmp_path / "spans" / "planning.jsonl"
    spans = SpanFile(path, SpanFileLimits(max_bytes=1024, keep=0))
    for n in range(40):
        spans.append(span_line(n))
    spans.close()
    assert [p.name for p in path.parent.iterdir()] == ["planning.jsonl"]
    assert path.stat().st_size <= 1024


def test_limits_come_from_the_environment() -> None:
    assert SpanFileLimits.from_env({}) == SpanFileLimits(32 * 1024 * 1024, 3)
    limits = SpanFileLimits.from_env({"YIJU_SPAN_FILE_MAX_MB": "0.5", "YIJU_SPAN_FILE_KEEP": "1"})
    assert limits == SpanFileLimits(512 * 1024, 1)
    with pytest.raises(ValueError, match="YIJU_SPAN_FILE_MAX_MB"):
        SpanFileLimits.from_env({"YIJU_SPAN_FILE_MAX_MB": "0"})


def test_the_exporter_writes_through_the_bounded_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YIJU_SPAN_FILE_MAX_MB", "0.001")  # 1,048 bytes
    monkeypatch.setenv("YIJU_SPAN_FILE_KEEP", "1")
    exporter = SpanFileExporter(tmp_path / "spans" / "fulfilment.jsonl")
    for n in range(30):
        exporter._file.append(span_line(n))
    exporter.shutdown()
    files = sorted(p.name for p in (tmp_path / "spans").iterdir())
    assert files == ["fulfilment.1.jsonl", "fulfilment.jsonl"]
