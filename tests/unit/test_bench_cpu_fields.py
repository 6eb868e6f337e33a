"""`make bench`'s CPU fields: cpu_ms_per_sentence counts the platform's processes only, the sampler
comparison reports both samplers, and the Kafka client is named (the hook for issue 15 part B)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.bench_steps import steady_step
from yiju_infra.bench import cpu
from yiju_infra.bench.pipeline import (
    HEADLINE,
    BenchConfig,
    PipelineBench,
    headline_cpu,
    parse_args,
    sampling_summary,
)

# 10 s at these % of one core, 1,000 sentences: broker 40 % = 4 s of CPU -> 4 ms per sentence, and so on.
USED = {
    "broker": 40.0,
    "redis": 10.0,
    "intent": 50.0,
    "planning": 20.0,
    "payment": 20.0,
    "fulfilment": 15.0,
    "model_gateway": 5.0,
    "loadgen": 30.0,
    "all ours": 190.0,
    "machine": 195.0,
    "others": 5.0,
}


def _bench(sampling: dict[str, Any] | None) -> PipelineBench:
    bench = object.__new__(PipelineBench)  # no platform: _results is arithmetic on what was measured
    bench.config = BenchConfig()
    bench.sampling = sampling
    return bench


def test_platform_cpu_leaves_out_the_load_generator_and_the_other_tenants() -> None:
    assert cpu.platform_ms_per_sentence(USED, seconds=10.0, sentences=1000) == pytest.approx(16.0)
    by_process = cpu.ms_per_sentence_by_process(USED, seconds=10.0, sentences=1000)
    assert by_process["loadgen"] == pytest.approx(3.0)
    assert by_process["broker"] == pytest.approx(4.0)
    assert not {"all ours", "machine", "others"} & set(by_process)


def test_results_carry_the_production_samplers_cpu_both_samplers_and_the_client() -> None:
    sampling = {
        "full": sampling_summary(steady_step(200, 6.0, 300), "parentbased_always_on", 1.0),
        "production": sampling_summary(steady_step(200, 4.5, 250), "parentbased_traceidratio", 0.05),
    }
    steps = [
        steady_step(100, 7.0, 200),
        steady_step(200, 6.2, 280),
        steady_step(400, 5.0, 900, "p99 too high"),
    ]
    checks = {"lost": 0, "duplicated": 0, "capacity": {"sentences_per_s": 350.0}}
    broker = {"produce_consume_per_s": 24000.0, "kind": "kafka", "description": "Apache Kafka"}
    results = _bench(sampling)._results(broker, steps, checks, 12.0)
    assert results["cpu_ms_per_sentence"] == 4.5
    assert (
        "production sampler (parentbased_traceidratio 0.05) at 200/s" in results["cpu_ms_per_sentence_basis"]
    )
    assert results["sampling"]["full"]["cpu_ms_per_sentence"] == 6.0
    assert results["sampling"]["full"]["p99_ms"] == 300
    assert results["sampling"]["production"]["p99_ms"] == 250
    assert results["kafka_client"] == "aiokafka"
    assert results["by_client"]["aiokafka"]["cpu_ms_per_sentence"] == 4.5
    assert results["by_client"]["aiokafka"]["sentences_per_s"] == 200
    assert results["by_client"]["aiokafka"]["capacity_sentences_per_s"] == 350.0
    assert "cpu_ms_per_sentence" in HEADLINE and all(k in results for k in HEADLINE)


def test_without_the_comparison_the_sustained_steps_platform_cpu_is_the_headline() -> None:
    best = steady_step(200, 6.2, 280)
    assert headline_cpu(None, best) == (6.2, "the sustained step (200/s offered), every trace recorded")
    assert headline_cpu(None, None) == (None, "no step was sustained")


def test_bench_flags_for_the_sampler_and_the_kafka_client() -> None:
    config = parse_args([])
    assert (config.sampling_rate, config.sample_ratio, config.kafka_client) == (200.0, 0.05, "aiokafka")
    assert parse_args(["--quick"]).sampling_rate == 100.0
    assert parse_args(["--quick", "--sampling-rate", "0", "--sample-ratio", "0.1"]).sampling_rate == 0.0
    assert parse_args(["--sample-ratio", "0.1"]).sample_ratio == 0.1


@pytest.mark.parametrize("argv", [["--kafka-client", "kafka-python"], ["--sample-ratio", "1.5"]])
def test_bench_refuses_a_client_it_does_not_have_and_a_ratio_above_one(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)
