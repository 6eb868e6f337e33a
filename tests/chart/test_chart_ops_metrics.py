"""The ops summary reads every replica in a cluster (issue 14, item 8): a headless metrics Service per
service for intent to find each pod by, the paths to scrape them, or Prometheus' API when configured."""

from __future__ import annotations

from typing import Any

from chart_harness import SERVICES, Chart, Rendered


def policy(rendered: Rendered, component: str) -> dict[str, Any]:
    return rendered.get("NetworkPolicy", rendered.name(component))["spec"]


def ports(rule: dict[str, Any]) -> set[tuple[str, int]]:
    return {(p["protocol"], p["port"]) for p in rule.get("ports", [])}


def labels_of(peer: dict[str, Any]) -> dict[str, str]:
    return peer.get("podSelector", {}).get("matchLabels", {})


def test_every_service_has_a_headless_metrics_service_intent_discovers(prod: Rendered) -> None:
    env = prod.env(prod.service_deployment("intent"))
    listed = dict(item.split("=", 1) for item in env["YIJU_METRICS_DISCOVERY"].split(","))
    assert set(listed) == set(SERVICES)
    for name in SERVICES:
        headless = prod.get("Service", f"{prod.name(name)}-metrics")
        deployment = prod.service_deployment(name)
        assert headless["spec"]["clusterIP"] == "None"
        assert headless["spec"]["publishNotReadyAddresses"] is True
        assert headless["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        assert [(p["name"], p["port"]) for p in headless["spec"]["ports"]] == [("metrics", 9100)]
        assert listed[name] == f"{headless['metadata']['name']}:9100"
    assert "YIJU_PROMETHEUS_URL" not in env


def test_intent_may_scrape_every_replica_through_the_policies(prod: Rendered) -> None:
    intent_pods = prod.service_deployment("intent")["spec"]["selector"]["matchLabels"]
    release_pods = {k: v for k, v in intent_pods.items() if k != "app.kubernetes.io/component"}
    out = [r for r in policy(prod, "intent")["egress"] if ports(r) == {("TCP", 9100)}]
    assert [[labels_of(peer) for peer in r["to"]] for r in out] == [[release_pods]]
    for name in SERVICES:
        (metrics,) = [r for r in policy(prod, name)["ingress"] if ports(r) == {("TCP", 9100)}]
        assert intent_pods in [labels_of(peer) for peer in metrics["from"]], name


def test_with_prometheus_configured_intent_asks_its_api(chart: Chart) -> None:
    rendered = chart.render("prod", "metrics.prometheusUrl=http://prometheus-operated.monitoring.svc:9090")
    env = rendered.env(rendered.service_deployment("intent"))
    assert env["YIJU_PROMETHEUS_URL"] == "http://prometheus-operated.monitoring.svc:9090"
    assert env["YIJU_PROMETHEUS_SELECTOR"] == 'namespace="yiju"'
    assert env["YIJU_PROMETHEUS_RATE_WINDOW"] == "2m"
    egress = policy(rendered, "intent")["egress"]
    assert any(ports(r) == {("TCP", 9090)} for r in egress)
    assert not any(ports(r) == {("TCP", 9100)} for r in egress)  # no scraping of pods then
    intent_pods = rendered.service_deployment("intent")["spec"]["selector"]["matchLabels"]
    (metrics,) = [r for r in policy(rendered, "planning")["ingress"] if ports(r) == {("TCP", 9100)}]
    assert intent_pods not in [labels_of(peer) for peer in metrics["from"]]
    custom = chart.render(
        "default", "metrics.prometheusUrl=http://p:9090", 'metrics.prometheusSelector=job!=""'
    )
    assert custom.env(custom.service_deployment("intent"))["YIJU_PROMETHEUS_SELECTOR"] == 'job!=""'


def test_a_rate_window_that_is_not_a_duration_fails_the_install(chart: Chart) -> None:
    message = chart.render_error("default", "metrics.prometheusRateWindow=two minutes")
    assert "prometheusRateWindow" in message
