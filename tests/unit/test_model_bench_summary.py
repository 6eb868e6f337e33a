"""`make bench --model sim` (issue 13 item 7): the Little's-law bound, the sustained rate, per-order model
figures, the slow and orbit verdicts, the JSON fields, the platform's settings and the bench's dispatch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from yiju.model_gateway.sim.latency import LognormalLatency
from yiju_infra.bench.model_bench import ModelBench, ModelBenchConfig, parse_args, platform_env
from yiju_infra.bench.model_summary import (
    expected_model_s,
    littles_bound,
    lognormal_mean_s,
    model_orders,
    orbit_verdict,
    slow_comparison,
    sustained_rate,
)
from yiju_infra.bench.pipeline import model_mode


def test_the_bound_is_slots_over_the_mean_model_time_capped_by_the_rules_path() -> None:
    assert lognormal_mean_s(1200, 6000) == pytest.approx(LognormalLatency(1200, 6000, None).mean_s)  # type: ignore[arg-type]
    assert lognormal_mean_s(1200, 6000) == pytest.approx(1.524, abs=0.001)
    two_turns = expected_model_s(1200, 6000, turns=2)
    assert two_turns == pytest.approx(3.048, abs=0.002)
    # 10 % of sentences: the first turn takes 30 s instead of its draw
    slow = expected_model_s(1200, 6000, turns=2, slow_rate=0.1, slow_ms=30_000)
    assert slow == pytest.approx(0.9 * two_turns + 0.1 * (30 + 1.524), abs=0.002)
    assert littles_bound(256, 2.0, rules_capacity=250) == 128.0
    assert littles_bound(256, 0.5, rules_capacity=250) == 250.0  # the model is not the bottleneck
    assert littles_bound(256, 0.0, rules_capacity=250) == 250.0


def test_the_sustained_rate_counts_completions_once_the_pipeline_is_full() -> None:
    start, end = 0.0, 60_000.0
    # 10/s sent for 60 s, each done 2 s later: the rate over [2 s, 60 s] is 10/s
    done = [i * 100.0 + 2000 for i in range(600)]
    assert sustained_rate(done, (start, end), settle_ms=2000) == 10.0
    # a pipeline that completes only 5/s (a growing backlog) reads 5/s
    assert sustained_rate([i * 200.0 + 2000 for i in range(300)], (start, end), settle_ms=2000) == 5.0
    # a settle time longer than half the step is cut to half of it
    assert sustained_rate(done, (start, end), settle_ms=600_000) == pytest.approx(
        sum(1 for t in done if 30_000 <= t <= 60_000) / 30, abs=0.1
    )
    assert sustained_rate([], (start, start), settle_ms=0) == 0.0


def sim_order(
    conversations: int, requests: int, service_s: float, wall_ms: float, slow: bool = False
) -> dict:
    return {
        "conversations": conversations,
        "requests": requests,
        "service_s": service_s,
        "first_ms": 1000.0,
        "last_ms": 1000.0 + wall_ms,
        "slow": slow,
    }


def test_model_figures_per_order_count_a_second_conversation_as_a_duplicate() -> None:
    orders = {f"o-{i}": sim_order(1, 2, 1.0 + i / 100, 1500 + i) for i in range(100)}
    orders["o-5"] = sim_order(2, 4, 2.0, 3000)  # sent to the model again
    orders["o-6"] = sim_order(1, 2, 30.0, 31_000, slow=True)
    orders["other-run"] = sim_order(3, 3, 9.0, 9000)
    figures = model_orders(orders, [f"o-{i}" for i in range(100)] + ["o-missing"])
    assert figures["orders"] == 100
    assert figures["requests"] == 202
    assert figures["duplicate_model_calls"] == 1 and figures["orders_called_twice"] == 1
    assert figures["slow_orders"] == 1
    assert figures["model_p99_ms"] == pytest.approx(2000.0)  # nearest rank: the 99th of 100 (o-5)
    assert figures["model_wall_p99_ms"] == pytest.approx(3000.0)
    assert figures["mean_model_s"] == pytest.approx(
        sum(o["service_s"] for k, o in orders.items() if k != "other-run") / 100, abs=0.001
    )
    assert model_orders(orders, [])["model_p99_ms"] == 0.0


def test_slow_and_orbit_verdicts() -> None:
    assert slow_comparison(8000, 9500)["within_20_percent"] is True
    assert slow_comparison(8000, 30_000) == {
        "baseline_p99_ms": 8000,
        "others_p99_ms": 30_000,
        "ratio": 3.75,
        "within_20_percent": False,
    }
    good = orbit_verdict({"COMPLETED": 200}, lost=0, duplicate_model_calls=0)
    assert good["ok"] and (good["completed"], good["cancelled_by_sweeper"]) == (200, 0)
    swept = orbit_verdict({"COMPLETED": 190, "CANCELLED": 7, "FAILED": 3}, lost=0, duplicate_model_calls=0)
    assert not swept["ok"] and swept["cancelled_by_sweeper"] == 10
    assert not orbit_verdict({"COMPLETED": 199, "REJECTED": 1}, lost=0, duplicate_model_calls=0)["ok"]
    asked = orbit_verdict({"COMPLETED": 199, "NEEDS_CLARIFICATION": 1}, lost=0, duplicate_model_calls=0)
    assert asked["ok"] and asked["needs_clarification"] == 1  # the model's question, not a lost order
    assert not orbit_verdict({"COMPLETED": 200}, lost=1, duplicate_model_calls=0)["ok"]
    assert not orbit_verdict({"COMPLETED": 200}, lost=0, duplicate_model_calls=1)["ok"]


def run(rate: float, p99: float, model_p99: float, mean_s: float, statuses: dict[str, int]) -> dict[str, Any]:
    return {
        "offered_per_s": rate,
        "sentences_per_s": rate * 0.98,
        "offered": sum(statuses.values()),
        "statuses": statuses,
        "lost": 0,
        "latency_ms": {"p50": p99 / 3, "p99": p99},
        "accepted_latency_ms": {"p50": p99 / 3 - 50, "p99": p99 - 50},
        "model": {
            "mean_model_s": mean_s,
            "model_p50_ms": model_p99 / 3,
            "model_p99_ms": model_p99,
            "model_wall_p99_ms": model_p99 + 20,
            "duplicate_model_calls": 0,
            "slow_orders": 0,
        },
        "model_calls_per_1000": 1980.0,
        "gateway": {"answered": 150, "answered_lost": 30, "claimed_not_answered": 20, "repeat_claims": 0},
    }


def test_the_results_carry_the_issue_fields_and_judge_the_targets(tmp_path: Path) -> None:
    config = ModelBenchConfig(slots=256, rules_capacity=250, out=tmp_path / "m.json", png=tmp_path / "m.png")
    made: list[dict[str, str]] = []
    bench = ModelBench(config, Console(), platform_factory=lambda env: made.append(env))  # type: ignore[arg-type,func-returns-value]
    runs = {
        "main": run(80.0, 9000, 8800, 3.0, {"COMPLETED": 4800}),
        "slow_baseline": run(35.0, 9000, 8800, 3.0, {"COMPLETED": 2100}),
        "slow": run(35.0, 31_000, 31_000, 5.9, {"COMPLETED": 2100}),
        "orbit": run(2.0, 180_000, 90_000, 90.0, {"COMPLETED": 200}),
    }
    bench.series["slow"] = [[1.0, 9500.0, 0]] * 90 + [[2.0, 31_000.0, 1]] * 10
    bench.kills = [{"process": "planning"}, {"process": "model_gateway"}]
    checks = {"lost": 0, "duplicated": 0, "money": {"ok": True}}
    results = bench._results(runs, checks)
    for key in (
        "sentences_per_s",
        "bound_sentences_per_s",
        "p50_ms",
        "p99_ms",
        "model_p99_ms",
        "lost",
        "duplicated",
        "duplicate_model_calls",
        "model_calls_per_1000",
    ):
        assert results[key] is not None, key
    assert results["bound_sentences_per_s"] == pytest.approx(256 / 3.0, abs=0.1)
    assert set(results["orbit"]) >= {"completed", "cancelled_by_sweeper", "duplicate_model_calls", "lost"}
    # 200 completed: 150 by the model, 30 at once after their calls were lost with the killed gateway,
    # 20 at the deadline
    assert results["orbit"]["completed_by_lost_call_fallback"] == 30
    assert results["orbit"]["completed_by_deadline_fallback"] == 20
    assert results["slow"]["comparison"]["within_20_percent"] is True
    assert results["targets"] == {
        "rate_at_least_90_percent_of_bound": True,  # 78.4/s of 85.3/s
        "p99_within_model_p99_plus_500_ms": True,  # 9000 <= 8800 + 500
        "nothing_lost_or_duplicated": True,
        "no_duplicate_charges": True,
        "slow_sentences_do_not_hold_others": True,
        "orbit_every_order_completes": True,
    }
    runs["main"]["latency_ms"]["p99"] = 9400  # 600 ms over the model's p99
    assert bench._results(runs, checks)["targets"]["p99_within_model_p99_plus_500_ms"] is False
    # every sentence reaches the model, through the Kafka path, with the rules at the deadline
    env = made[0]
    assert env["YIJU_PLANNING_MODEL_PATH"] == "kafka"
    assert env["YIJU_PLANNING_MODEL_DEADLINE_FALLBACK"] == "rules"
    assert (env["YIJU_GATEWAY_CACHE_TTL_S"], env["YIJU_GATEWAY_SINGLE_FLIGHT"]) == ("0", "false")
    assert env["YIJU_GATEWAY_BACKENDS"] == "openai,rules" and env["YIJU_OPENAI_BASE_URL"] == bench.sim.url
    assert int(env["YIJU_OPENAI_MAX_CONNECTIONS"]) > config.slots


def test_make_bench_dispatches_model_mode_and_quick_shortens_it() -> None:
    assert model_mode(["--model", "sim", "--quick"]) and model_mode(["--model=sim"])
    assert not model_mode(["--model", "rules"]) and not model_mode(["--quick"])
    config = parse_args(["--model", "sim", "--model-p50-ms", "800", "--model-slots", "64", "--quick"])
    assert (config.p50_ms, config.slots) == (800, 64)
    assert config.step_s < 60 and config.orbit_link_ms < config.deadline_s * 1000
    assert platform_env(config, "http://x/v1")["YIJU_PLANNING_MODEL_DEADLINE_S"] == "30"
    assert parse_args([]).runs == ("main", "slow", "orbit")
    assert parse_args(["--runs", "main"]).runs == ("main",)


def test_the_gateway_window_outgrows_the_model_slots_unless_set() -> None:
    # a conversation keeps its window place between its turns, when it holds no model slot
    default = parse_args(["--model-slots", "256"])
    assert default.gateway_window == 320
    env = platform_env(default, "http://x/v1")
    assert env["YIJU_GATEWAY_MAX_INFLIGHT"] == "320"
    assert int(env["YIJU_OPENAI_MAX_CONNECTIONS"]) > 320  # every call in the window has its connection
    assert parse_args(["--max-inflight", "256"]).gateway_window == 256


def test_the_model_bench_traces_as_the_chart_does_unless_asked_for_every_trace() -> None:
    production = platform_env(parse_args([]), "http://x/v1")
    assert (production["YIJU_TRACE_SAMPLER"], production["YIJU_TRACE_SAMPLE_RATIO"]) == (
        "parentbased_traceidratio",
        "0.05",
    )
    full = platform_env(parse_args(["--sampler", "full"]), "http://x/v1")
    assert (full["YIJU_TRACE_SAMPLER"], full["YIJU_TRACE_SAMPLE_RATIO"]) == ("parentbased_always_on", "1")
    # a setting given with --env still wins
    forced = platform_env(parse_args(["--env", "YIJU_TRACE_SAMPLE_RATIO=0.5"]), "http://x/v1")
    assert forced["YIJU_TRACE_SAMPLE_RATIO"] == "0.5"
