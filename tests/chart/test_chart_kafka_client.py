"""The services' Kafka client is a chart value: YIJU_KAFKA_CLIENT in the ConfigMap, confluent in the
production profile (it measured better, docs/performance.md §8), aiokafka by default, nothing else."""

from __future__ import annotations

from chart_harness import Chart, Rendered


def test_prod_runs_the_confluent_client_and_the_default_is_aiokafka(chart: Chart, prod: Rendered) -> None:
    assert prod.get("ConfigMap", "yiju-config")["data"]["YIJU_KAFKA_CLIENT"] == "confluent"
    assert (
        chart.render("prod", "kafka.client=aiokafka").get("ConfigMap", "yiju-config")["data"][
            "YIJU_KAFKA_CLIENT"
        ]
        == "aiokafka"
    )


def test_a_client_the_services_do_not_have_is_refused(chart: Chart) -> None:
    assert "client" in chart.render_error("prod", "kafka.client=kafka-python")
