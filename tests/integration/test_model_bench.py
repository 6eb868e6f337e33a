"""`make bench BENCH_ARGS="--model sim"` in miniature (issue 13 item 7): the model benchmark's main run on
a real platform (the session's Kafka), against the simulated Qwen as its own process, writes its JSON
and plot with nothing lost, no sentence sent to the model twice and the wallets charged exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import platform_on
from yiju_infra.bench.model_bench import parse_args, run_bench
from yiju_infra.local.broker import BrokerServer

pytestmark = pytest.mark.integration


async def test_the_model_benchmark_runs_on_a_platform_and_accounts_for_every_order(
    tmp_path: Path, shared_kafka: BrokerServer
) -> None:
    out, png = tmp_path / "model.json", tmp_path / "model.png"
    config = parse_args(
        [
            *("--model", "sim", "--quick", "--runs", "main", "--users", "200"),
            *("--model-p50-ms", "200", "--model-p99-ms", "1000", "--model-slots", "16"),
            *("--calibrate-s", "4", "--step-s", "8", "--out", str(out), "--png", str(png)),
        ]
    )
    await run_bench(
        config,
        Console(stderr=True, width=200),
        platform_factory=lambda env: platform_on(shared_kafka, tmp_path / "platform", extra_env=env),
    )
    doc = json.loads(out.read_text())
    main = doc["runs"]["main"]
    assert main["offered"] > 0 and main["completed"] > 0.9 * main["offered"]
    assert (doc["lost"], doc["duplicated"], doc["duplicate_model_calls"]) == (0, 0, 0)
    assert doc["checks"]["gateway_repeat_claims"] == 0
    assert doc["money_ok"] and doc["checks"]["projection"]["mismatched"] == 0
    # every order went to the model itself (no cache, no single-flight): its two turns, counted per order
    assert main["model"]["orders"] == main["offered"]
    assert doc["model_calls_per_1000"] >= 1900
    # Little's law, capped by the platform's own capacity in model mode (measured first; on a busy machine
    # it, not the 16 slots, can be the limit)
    capacity = doc["runs"]["capacity"]["capacity_per_s"] or 250.0
    bound = min(16 / main["model"]["mean_model_s"], capacity, 250.0)
    assert doc["bound_sentences_per_s"] == pytest.approx(bound, rel=0.01)
    assert doc["p99_ms"] >= doc["model_p99_ms"] > 0
    assert doc["orbit"] is None and doc["targets"]["orbit_every_order_completes"] is None
    assert png.stat().st_size > 0
