"""The ops summary counts every replica (issue 14, item 8): two fake replicas per service over HTTP (listed,
or found behind a headless name), and a fake Prometheus HTTP API that computes the quantiles itself."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from yiju.common.settings import Settings
from yiju.intent.console.metrics_targets import ReplicaTargets, metrics_targets
from yiju.intent.console.ops import OpsSummary, histogram_quantile
from yiju.intent.console.settings import ConsoleSettings
from yiju_infra.local.platform import LocalPlatform
from yiju_infra.local.processes import free_port

Handler = Callable[[str], tuple[int, str, bytes]]


@asynccontextmanager
async def http_server(handler: Handler, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[int]:
    """A minimal HTTP/1.1 server: handler(path with query) -> (status, content type, body)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode()
            status, kind, body = handler(target)
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, host, port or free_port(host))
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def replica_metrics(
    *, published: int, handled: int, lag: dict[int, int], fast: int, slow: int, dead: int = 0
) -> bytes:
    """One replica's /metrics: planning's group, with `fast` records under 10 ms and `slow` under 100 ms."""
    registry = CollectorRegistry()
    Counter("yiju_events_published_total", "", ["topic"], registry=registry).labels("t.plan").inc(published)
    consumed = Counter("yiju_events_consumed_total", "", ["group", "topic", "outcome"], registry=registry)
    consumed.labels("yiju-planning", "t.accepted", "ok").inc(handled)
    gauge = Gauge("yiju_consumer_lag", "", ["group", "topic", "partition"], registry=registry)
    for partition, value in lag.items():
        gauge.labels("yiju-planning", "t.accepted", str(partition)).set(value)
    seconds = Histogram(
        "yiju_handler_seconds", "", ["group", "topic"], buckets=(0.01, 0.1), registry=registry
    ).labels("yiju-planning", "t.accepted")
    for _ in range(fast):
        seconds.observe(0.005)
    for _ in range(slow):
        seconds.observe(0.05)
    if dead:
        dlq = Counter("yiju_dead_letters_total", "", ["group", "reason"], registry=registry)
        dlq.labels("yiju-planning", "malformed").inc(dead)
    return generate_latest(registry)


# Replica 1 is fast, replica 2 slow; partition 1 moved from replica 1 to 2 (1 still reports its old lag).
REPLICA_1 = replica_metrics(published=30, handled=40, lag={0: 5, 1: 2}, fast=100, slow=0, dead=1)
REPLICA_2 = replica_metrics(published=12, handled=25, lag={1: 7, 2: 3}, fast=0, slow=100, dead=2)
EMPTY = generate_latest(CollectorRegistry())


def serving(body: bytes) -> Handler:
    return lambda _: (200, "text/plain; version=0.0.4", body)


def merged_p99_ms() -> float:
    """What Prometheus' histogram_quantile gives over both replicas' buckets added up."""
    return round(histogram_quantile(0.99, {0.01: 100, 0.1: 200, float("inf"): 200}) * 1000, 3)  # type: ignore[operator]


def check_planning_over_both(summary: dict[str, Any]) -> None:
    services = {s["name"]: s for s in summary["services"]}
    assert (services["planning"]["replicas"], services["planning"]["replicas_up"]) == (2, 2)
    assert services["planning"]["up"] is True
    assert summary["throughput"]["published_total"] == 42  # 30 + 12: both replicas
    planning = next(g for g in summary["consumer_groups"] if g["group"] == "yiju-planning")
    assert planning["handled_total"] == 65
    assert planning["lag"] == 5 + 7 + 3  # partition 1 once, at the larger of the two reports
    assert planning["dead_letters_total"] == 3
    # Neither replica alone: replica 1 would say ~9.9 ms, replica 2 ~99 ms.
    assert planning["p99_ms"] == merged_p99_ms()
    assert 9.9 < planning["p99_ms"] < 99


async def test_every_listed_replica_is_scraped_and_merged() -> None:
    async with (
        http_server(serving(REPLICA_1)) as one,
        http_server(serving(REPLICA_2)) as two,
        http_server(serving(EMPTY)) as others,
    ):
        spec = ",".join(
            [f"planning=127.0.0.1:{one}", f"planning=127.0.0.1:{two}"]
            + [f"{s}=127.0.0.1:{others}" for s in ("intent", "payment", "fulfilment", "model-gateway")]
        )
        console = ConsoleSettings(metrics_targets=spec)
        ops = OpsSummary(Settings(env="prod"), console, redis=None, campaign=None)  # type: ignore[arg-type]
        summary = await ops.collect()
    assert summary["source"] == "scrape"
    check_planning_over_both(summary)
    assert all(s["up"] for s in summary["services"]), summary["services"]


async def test_replicas_behind_a_headless_name_are_each_scraped() -> None:
    port = free_port()
    async with (
        http_server(serving(REPLICA_1), "127.0.0.1", port),
        http_server(serving(REPLICA_2), "127.0.0.2", port),
        http_server(serving(EMPTY)) as others,
    ):
        dns = {"yiju-planning-metrics": ["127.0.0.1", "127.0.0.2"], "yiju-others": ["127.0.0.1"]}

        async def resolve(host: str) -> list[str]:
            if host not in dns:
                raise LookupError(f"{host}: no such name")
            return dns[host]

        discovery = ",".join(
            [f"planning=yiju-planning-metrics:{port}"]
            + [f"{s}=yiju-others:{others}" for s in ("intent", "payment", "fulfilment", "model-gateway")]
        )
        console = ConsoleSettings(metrics_discovery=discovery)
        targets = ReplicaTargets(Settings(env="prod"), console, resolver=resolve)
        ops = OpsSummary(Settings(env="prod"), console, None, None, targets=targets)  # type: ignore[arg-type]
        summary = await ops.collect()
        check_planning_over_both(summary)
        # A replica more (a scale-out) is seen at the next summary, without a restart.
        dns["yiju-planning-metrics"] = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
        later = await ops.collect()
    planning = next(s for s in later["services"] if s["name"] == "planning")
    assert (planning["replicas"], planning["replicas_up"], planning["up"]) == (3, 2, False)
    assert "127.0.0.3" in planning["error"]


async def test_an_unresolvable_headless_name_is_reported_not_raised() -> None:
    async def resolve(host: str) -> list[str]:
        raise LookupError(f"{host}: NXDOMAIN")

    console = ConsoleSettings(metrics_discovery="payment=yiju-payment-metrics:9100")
    targets = ReplicaTargets(Settings(env="prod"), console, resolver=resolve)
    ops = OpsSummary(Settings(env="prod"), console, None, None, targets=targets)  # type: ignore[arg-type]
    summary = await ops.collect()
    payment = next(s for s in summary["services"] if s["name"] == "payment")
    assert payment["up"] is False and payment["replicas"] == 0 and "NXDOMAIN" in payment["error"]


# --- Prometheus ------------------------------------------------------------------------------------------

SELECTOR = 'namespace="yiju"'
P99_QUERY = 'histogram_quantile(0.99, sum by (group, le) (yiju_handler_seconds_bucket{namespace="yiju"}))'
LAG_QUERY = 'sum by (group) (max by (group, topic, partition) (yiju_consumer_lag{namespace="yiju"}))'


def vector(label: str, values: dict[str, float]) -> list[dict[str, Any]]:
    return [{"metric": {label: k} if label else {}, "value": [1.0, str(v)]} for k, v in values.items()]


def fake_prometheus(asked: list[str]) -> Handler:
    """Answers the queries a Prometheus holding two planning replicas would; anything else is an empty
    vector (Prometheus' answer for a series nobody exports)."""
    answers = {
        'count by (job) (up{namespace="yiju"})': vector(
            "job",
            {
                "yiju-intent": 2,
                "yiju-planning": 2,
                "yiju-payment": 2,
                "yiju-fulfilment": 1,
                "yiju-model-gateway": 1,
                "kube-state-metrics": 1,
            },
        ),
        'sum by (job) (up{namespace="yiju"})': vector(
            "job",
            {
                "yiju-intent": 2,
                "yiju-planning": 2,
                "yiju-payment": 1,
                "yiju-fulfilment": 1,
                "yiju-model-gateway": 1,
                "kube-state-metrics": 1,
            },
        ),
        'sum by (topic) (yiju_events_published_total{namespace="yiju"})': vector("topic", {"t.plan": 42}),
        'sum by (group) (yiju_events_consumed_total{namespace="yiju"})': vector(
            "group", {"yiju-planning": 65}
        ),
        LAG_QUERY: vector("group", {"yiju-planning": 15}),
        P99_QUERY: vector("group", {"yiju-planning": 0.0982, "yiju-payment": float("nan")}),
        'sum by (topic) (rate(yiju_events_published_total{namespace="yiju"}[2m]))': vector(
            "topic", {"t.plan": 3.5}
        ),
        'sum(yiju_gateway_cache_hits_total{namespace="yiju"})': vector("", {"": 30}),
        'sum(yiju_gateway_cache_misses_total{namespace="yiju"})': vector("", {"": 10}),
    }

    def handle(target: str) -> tuple[int, str, bytes]:
        parts = urlsplit(target)
        if parts.path != "/api/v1/query":
            return 404, "text/plain", b"not found"
        query = parse_qs(parts.query)["query"][0]
        asked.append(query)
        doc = {"status": "success", "data": {"resultType": "vector", "result": answers.get(query, [])}}
        return 200, "application/json", json.dumps(doc).encode()

    return handle


async def test_with_prometheus_the_numbers_and_quantiles_come_from_its_api() -> None:
    asked: list[str] = []
    async with http_server(fake_prometheus(asked)) as port:
        console = ConsoleSettings(prometheus_url=f"http://127.0.0.1:{port}/", prometheus_selector=SELECTOR)
        ops = OpsSummary(Settings(env="prod"), console, None, None)  # type: ignore[arg-type]
        summary = await ops.collect()
    assert summary["source"] == "prometheus" and summary["window_s"] == 120
    planning = next(g for g in summary["consumer_groups"] if g["group"] == "yiju-planning")
    assert (planning["handled_total"], planning["lag"], planning["p99_ms"]) == (65, 15, 98.2)
    payment = next(g for g in summary["consumer_groups"] if g["group"] == "yiju-payment")
    assert payment["p99_ms"] is None  # NaN: no observations yet
    assert summary["throughput"]["published_total"] == 42
    assert summary["throughput"]["published_per_s"] == 3.5
    assert summary["gateway"]["cache_hit_ratio"] == 0.75
    services = {s["name"]: s for s in summary["services"]}
    assert (services["planning"]["replicas"], services["planning"]["up"]) == (2, True)
    assert (services["payment"]["replicas"], services["payment"]["replicas_up"]) == (2, 1)
    assert services["payment"]["up"] is False and "1 of 2" in services["payment"]["error"]
    # Prometheus computed the quantile: nobody asked for raw buckets to interpolate here.
    assert P99_QUERY in asked and LAG_QUERY in asked
    assert not [q for q in asked if "_bucket" in q and not q.startswith("histogram_quantile(")]
    assert all(SELECTOR in q for q in asked)


async def test_prometheus_unreachable_marks_every_service_down_without_raising() -> None:
    port = free_port()  # nothing listens there
    console = ConsoleSettings(prometheus_url=f"http://127.0.0.1:{port}", ops_scrape_timeout_s=1.0)
    ops = OpsSummary(Settings(env="prod"), console, None, None)  # type: ignore[arg-type]
    summary = await ops.collect()
    assert summary["source"] == "prometheus"
    assert all(not s["up"] and "cannot query" in s["error"] for s in summary["services"])


def test_a_bad_rate_window_is_refused_at_start() -> None:
    console = ConsoleSettings(prometheus_url="http://prometheus:9090", prometheus_rate_window="two minutes")
    with pytest.raises(ValueError, match="YIJU_PROMETHEUS_RATE_WINDOW"):
        OpsSummary(Settings(env="prod"), console, None, None)  # type: ignore[arg-type]


def test_the_local_platform_lists_every_process_metrics_port(tmp_path: Path) -> None:
    platform = LocalPlatform(tmp_path, replicas={"planning": 2, "intent": 2})
    listed = ConsoleSettings(metrics_targets=platform.service_env("intent")["YIJU_METRICS_TARGETS"])
    targets = metrics_targets(Settings(env="local"), listed)
    ports = {
        name: int(platform.service_env(name)["YIJU_METRICS_PORT"])
        for service in ("intent", "planning")
        for name in platform.instances(service)
    }
    assert targets["planning"] == [
        f"http://127.0.0.1:{ports[n]}/metrics" for n in platform.instances("planning")
    ]
    assert len(targets["intent"]) == 2 and len(set(ports.values())) == 4
    assert targets["payment"] == [f"http://127.0.0.1:{platform.ports.metrics('payment')}/metrics"]
