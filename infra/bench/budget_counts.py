"""What a platform has done so far, read from outside: the services' Prometheus counters, Redis' own
statistics and the local span files. Two snapshots, one before and one after a load, give the
per-sentence budget (yiju_infra.bench.budget)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

# Counter name (as exposed, with _total) -> the key it is reported under.
SERVICE_COUNTERS = {
    "yiju_events_published_total": "produces",
    "yiju_events_consumed_total": "consumes",
    "yiju_redis_round_trips_total": "redis_round_trips",
    "yiju_redis_commands_total": "redis_client_commands",
}


def service_counts(metrics_text: str) -> dict[str, float]:
    """Kafka produces and consumes, Redis round trips and commands in one service's Prometheus
    exposition, every label summed."""
    out = dict.fromkeys(SERVICE_COUNTERS.values(), 0.0)
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            key = SERVICE_COUNTERS.get(sample.name)
            if key is not None:
                out[key] += sample.value
    return out


async def scrape_service_counts(ports: Mapping[str, int]) -> dict[str, dict[str, float]]:
    """Per service (name -> metrics port): its counts so far (see service_counts)."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        replies = await asyncio.gather(
            *(client.get(f"http://127.0.0.1:{port}/metrics") for port in ports.values())
        )
    return {name: service_counts(reply.text) for name, reply in zip(ports, replies, strict=True)}


def redis_counts(commandstats: Mapping[str, Any], stats: Mapping[str, Any]) -> dict[str, float]:
    """Redis' counters: `calls:<command>` per command (scripts' inner commands included, as Redis counts
    them), `commands` (total_commands_processed) and `reads` (total_reads_processed: the server's read
    events, from every client: the load generator's and this tool's included)."""
    out: dict[str, float] = {}
    for key, value in commandstats.items():
        name = key.removeprefix("cmdstat_")
        calls = value.get("calls", 0) if isinstance(value, Mapping) else 0
        out[f"calls:{name}"] = float(calls)
    out["commands"] = float(stats.get("total_commands_processed", 0))
    out["reads"] = float(stats.get("total_reads_processed", 0))
    return out


async def read_redis_counts(redis: Any) -> dict[str, float]:
    return redis_counts(await redis.info("commandstats"), await redis.info("stats"))


@dataclass
class SpanTally:
    """Spans that started inside a time window, by service and by kind of work."""

    total: int = 0
    by_service: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    by_name: Counter[str] = field(default_factory=Counter)
    grpc_calls: Counter[str] = field(default_factory=Counter)
    traces: set[str] = field(default_factory=set)


def span_kind(span: Mapping[str, Any]) -> str:
    """kafka send / kafka process / grpc client / grpc server / http / internal."""
    attributes = span.get("attributes") or {}
    if attributes.get("messaging.system") == "kafka":
        return f"kafka {attributes.get('messaging.operation.type', '?')}"
    if attributes.get("rpc.system") == "grpc":
        return f"grpc {str(span.get('kind', '')).lower()}"
    if "http.method" in attributes or "http.request.method" in attributes:
        return "http"
    return "internal"


def tally_spans(lines: Iterable[bytes], start_ns: int, end_ns: int) -> SpanTally:
    """Counts the span lines (the local span files' JSON) whose start falls in [start_ns, end_ns)."""
    tally = SpanTally()
    for line in lines:
        if not line.strip():
            continue
        span = orjson.loads(line)
        if not start_ns <= int(span.get("start_ns", 0)) < end_ns:
            continue
        kind = span_kind(span)
        tally.total += 1
        tally.by_service[str(span.get("service", ""))] += 1
        tally.by_kind[kind] += 1
        tally.by_name[f"{span.get('service', '')}: {_generic_name(str(span.get('name', '')))}"] += 1
        tally.traces.add(str(span.get("trace_id", "")))
        if kind == "grpc client":
            tally.grpc_calls[str(span.get("name", ""))] += 1
    return tally


def _generic_name(name: str) -> str:
    """A span name without the platform's topic prefix (`send p-1a2b.yiju.x.v1` -> `send yiju.x.v1`)."""
    verb, _, rest = name.partition(" ")
    if rest and ".yiju." in rest:
        rest = "yiju." + rest.split(".yiju.", 1)[1]
    return f"{verb} {rest}".strip()


def span_lines(spans_dir: Path) -> Iterable[bytes]:
    """Every line of every span file (rotated ones included) under `spans_dir`."""
    for path in sorted(spans_dir.glob("*.jsonl")):
        with path.open("rb") as handle:
            yield from handle
