"""A measured steady step of `make bench`, as the pipeline bench's summaries read it (shared test data)."""

from __future__ import annotations

from typing import Any


def steady_step(offered: float, platform_ms: float, p99: float, verdict: str = "") -> dict[str, Any]:
    return {
        "offered_per_s": offered,
        "completed_per_s": offered,
        "pipeline_latency_ms": {"p50": p99 / 2, "p95": p99 * 0.9, "p99": p99},
        "latency_ms": {"p50": p99, "p95": p99, "p99": p99 * 2},
        "platform_cpu_ms_per_sentence": platform_ms,
        "cpu_ms_per_sentence_by_process": {"broker": 1.0},
        "cpu_percent": {"others": 3.0},
        "verdict": verdict,
    }
