"""Tracing at production settings: the services' head sampler from the chart, and the collector's tail
sampling tier (errors and slow orders always kept, a ratio of the rest)."""

from __future__ import annotations

from typing import Any

import yaml
from chart_harness import SERVICES, Chart, Rendered, render

TAIL = ("otel.tailSampling.enabled=true",)


def _config(rendered: Rendered, component: str) -> dict[str, Any]:
    cm = rendered.get("ConfigMap", rendered.name(component))
    return yaml.safe_load(cm["data"]["config.yaml"])


def test_prod_samples_five_percent_of_sentences_head_based(prod: Rendered) -> None:
    for service in SERVICES:
        env = prod.env(prod.service_deployment(service))
        assert env["YIJU_TRACE_SAMPLER"] == "parentbased_traceidratio"
        assert env["YIJU_TRACE_SAMPLE_RATIO"] == "0.05"
    assert prod.find("Deployment", prod.name("otel-tail-sampler")) is None
    traces = _config(prod, "otel-collector")["service"]["pipelines"]["traces"]
    assert traces["exporters"] == ["otlp"] and "tail_sampling" not in traces["processors"]


def test_dev_with_an_endpoint_records_every_trace(chart: Chart) -> None:
    dev = chart.render("dev", "otel.endpoint=http://otel.example.com:4318")
    env = dev.env(dev.service_deployment("intent"))
    assert (env["YIJU_TRACE_SAMPLER"], env["YIJU_TRACE_SAMPLE_RATIO"]) == ("parentbased_traceidratio", "1")


def test_tail_sampling_keeps_errors_slow_orders_and_a_ratio_of_the_rest(chart: Chart) -> None:
    prod = chart.render("prod", *TAIL)
    sampler = _config(prod, "otel-tail-sampler")
    tail = sampler["processors"]["tail_sampling"]
    policies = {p["name"]: p for p in tail["policies"]}
    assert policies["errors"] == {
        "name": "errors",
        "type": "status_code",
        "status_code": {"status_codes": ["ERROR"]},
    }
    assert policies["slow-orders"] == {
        "name": "slow-orders",
        "type": "latency",
        "latency": {"threshold_ms": 2000},
    }
    assert policies["the-rest"]["type"] == "probabilistic"
    assert policies["the-rest"]["probabilistic"]["sampling_percentage"] == 5
    assert (tail["decision_wait"], tail["num_traces"]) == ("30s", 200000)
    traces = sampler["service"]["pipelines"]["traces"]
    assert traces == {
        "receivers": ["otlp"],
        "processors": ["memory_limiter", "tail_sampling", "batch"],
        "exporters": ["otlp"],
    }
    assert sampler["exporters"]["otlp"]["endpoint"] == "tempo-distributor.monitoring.svc:4317"


def test_with_tail_sampling_every_trace_reaches_one_sampler_replica(chart: Chart) -> None:
    prod = chart.render("prod", *TAIL)
    # The services record every trace: the collector decides once the trace is complete.
    for service in SERVICES:
        env = prod.env(prod.service_deployment(service))
        assert env["YIJU_TRACE_SAMPLER"] == "parentbased_always_on"
        assert "YIJU_TRACE_SAMPLE_RATIO" not in env
    # The collector routes by trace id to the sampler's pods (headless Service), so all spans of a
    # trace meet in one replica; metrics and logs keep their exporters.
    collector = _config(prod, "otel-collector")
    pipelines = collector["service"]["pipelines"]
    assert pipelines["traces"]["exporters"] == ["loadbalancing"]
    assert "tail_sampling" not in pipelines["traces"]["processors"]
    assert pipelines["metrics"]["exporters"] == ["otlp"]
    lb = collector["exporters"]["loadbalancing"]
    service = prod.get("Service", prod.name("otel-tail-sampler"))
    assert service["spec"]["clusterIP"] == "None"
    assert lb["routing_key"] == "traceID"
    assert lb["resolver"]["dns"] == {
        "hostname": f"{prod.name('otel-tail-sampler')}.{render.NAMESPACE}.svc",
        "port": 4317,
    }
    deployment = prod.get("Deployment", prod.name("otel-tail-sampler"))
    assert deployment["spec"]["replicas"] == 2
    policy = prod.get("NetworkPolicy", prod.name("otel-tail-sampler"))
    (otlp_in, _metrics_in) = policy["spec"]["ingress"]
    peer = otlp_in["from"][0]["podSelector"]["matchLabels"]
    assert (
        peer.items()
        <= prod.get("Deployment", prod.name("otel-collector"))["spec"]["selector"]["matchLabels"].items()
    )
    assert otlp_in["ports"] == [{"protocol": "TCP", "port": 4317}]


def test_tail_sampling_without_the_collector_is_refused(chart: Chart) -> None:
    message = chart.render_error("default", *TAIL)
    assert "otel.tailSampling.enabled needs otel.collector.enabled" in message


def test_a_sampler_the_services_do_not_know_is_refused_by_the_schema(chart: Chart) -> None:
    assert "sampler" in chart.render_error("prod", "otel.sampler=sometimes")
    assert "sampleRatio" in chart.render_error("prod", "otel.sampleRatio=1.5")
