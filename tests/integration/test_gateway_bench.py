"""`make bench-gateway` in miniature: the script runs end to end and reports what it saved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from yiju_infra.bench.gateway import main, parse_args

pytestmark = pytest.mark.integration


async def test_gateway_benchmark_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "gateway.json"
    args = parse_args(["--requests", "300", "--distinct", "40", "--concurrency", "16", "--out", str(out)])
    await main(args)
    doc = json.loads(out.read_text())
    baseline, single_flight, cached = doc["results"]
    assert all(r["failures"] == 0 and r["requests"] == 300 for r in doc["results"])
    assert baseline["backend_sentences"] == 300 and baseline["cache_hits"] == 0
    # Zipf: most requests repeat a popular sentence; each distinct one reaches the backend once at most
    assert cached["backend_sentences"] <= doc["config"]["distinct_sentences_requested"]
    assert cached["cache_hits"] + cached["single_flight_shared"] + cached["backend_sentences"] == 300
    assert cached["cache_hits"] > 0 and cached["backend_work_saved"] > 0.8
    assert single_flight["backend_sentences"] + single_flight["single_flight_shared"] == 300
