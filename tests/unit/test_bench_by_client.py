"""`make bench` measures both Kafka clients side by side: `--kafka-client both` (the default) runs the
steps on aiokafka, then a steady step and a burst on each client; `by_client` has each one's figures."""

from __future__ import annotations

from tests.unit.bench_steps import steady_step
from yiju_infra.bench.pipeline import KAFKA_CLIENTS, BenchConfig, PipelineBench, client_summary, parse_args


def test_the_default_compares_both_clients_and_one_named_client_runs_alone() -> None:
    assert KAFKA_CLIENTS == ("aiokafka", "confluent")
    both = parse_args([])
    assert (both.kafka_client, both.compare_clients) == ("aiokafka", KAFKA_CLIENTS)
    assert (both.client_rate, both.client_burst) == (200.0, 3000)
    quick = parse_args(["--quick", "--kafka-client", "both"])
    assert (quick.client_rate, quick.client_burst) == (100.0, 1000)
    alone = parse_args(["--kafka-client", "confluent", "--client-rate", "150", "--client-burst", "0"])
    assert (alone.kafka_client, alone.compare_clients) == ("confluent", ())
    assert (alone.client_rate, alone.client_burst) == (150.0, 0)


def test_by_client_holds_each_clients_steady_step_and_capacity() -> None:
    bench = object.__new__(PipelineBench)  # no platform: _results is arithmetic on what was measured
    bench.config = BenchConfig(compare_clients=KAFKA_CLIENTS)
    bench.sampling = None
    bench.by_client = {
        "aiokafka": client_summary(
            steady_step(200, 6.0, 300), {"sentences_per_s": 310.0, "platform_cpu_ms_per_sentence": 5.1}
        ),
        "confluent": client_summary(steady_step(200, 4.0, 200), None),
    }
    checks = {"lost": 0, "duplicated": 0, "capacity": {"sentences_per_s": 350.0}}
    broker = {"produce_consume_per_s": 24000.0, "kind": "kafka", "description": "Apache Kafka"}
    results = bench._results(broker, [steady_step(100, 7.0, 200)], checks, 12.0)
    assert results["kafka_client"] == "aiokafka"
    aio, confluent = results["by_client"]["aiokafka"], results["by_client"]["confluent"]
    assert (aio["cpu_ms_per_sentence"], aio["sentences_per_s"], aio["p99_ms"]) == (6.0, 200, 300)
    assert (aio["capacity_sentences_per_s"], aio["capacity_cpu_ms_per_sentence"]) == (310.0, 5.1)
    assert (confluent["cpu_ms_per_sentence"], confluent["p99_ms"], confluent["capacity_sentences_per_s"]) == (
        4.0,
        200,
        None,
    )
