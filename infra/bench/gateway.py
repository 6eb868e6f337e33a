"""Benchmark of the model gateway through its gRPC API: `make bench-gateway`.

Starts a real Redis (yiju_infra.local.redis_server) and the gateway's gRPC server in this process
with the rules backend, then sends a promotion-day workload: sentences templated from the demo
catalog in English and Chinese, drawn with a Zipf distribution (a few sentences are very popular,
most are rare), from many concurrent clients. Three runs over the same workload:

  1. baseline        no cache, no single-flight: every sentence reaches the backend;
  2. single-flight   identical sentences in flight at once share one backend call;
  3. cache + sf      plus the Redis exact-match cache (starting cold).

For each: sentences/s, p50/p99 latency, and backend work saved. `--model-ms N` adds N ms to every
backend call (a stand-in for a GPU model's batch latency), where the savings matter most.
Client and server share this process and its CPU, so absolute numbers are a floor.
Results go to bench/gateway.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from yiju.common.catalog import Catalog, load_catalog
from yiju.common.settings import REPO_ROOT
from yiju.gen.gateway.v1 import gateway_pb2 as pb
from yiju.gen.gateway.v1 import gateway_pb2_grpc as pb_grpc
from yiju.model_gateway.assemble import assemble
from yiju.model_gateway.backends.base import Backend
from yiju.model_gateway.config import GatewaySettings
from yiju.model_gateway.tools import ParseRequest, ParseResult
from yiju_infra.local.processes import free_port
from yiju_infra.local.redis_server import RedisServer

EN_TEMPLATES = [
    "{n} {item} please",
    "order {n} {item} to my {place}",
    "can I get {n} {item} delivered to the {place} {time}",
    "{n} {item} for the team, send to {place}",
    "I'd like {n} {item} {time}",
]
ZH_TEMPLATES = [
    "来{zn}份{item}",
    "帮我买{zn}个{item}送到{place}",
    "{time}要{zn}份{item}",
    "{item}{zn}份，送{place}",
]
EN_NUMBERS = ["a", "2", "3", "two", "four", "5"]
ZH_NUMBERS = ["一", "两", "三", "四", "5"]
EN_PLACES, ZH_PLACES = ["office", "home"], ["公司", "家"]
EN_TIMES, ZH_TIMES = ["at 7pm", "tomorrow", "at noon", "tonight"], ["明天", "今晚", "中午"]
SHOPPABLE = ("food", "grocery", "retail")


def distinct_sentences(catalog: Catalog, count: int, rng: random.Random) -> list[tuple[str, str]]:
    """`count` different (sentence, locale) pairs from the catalog's shoppable products."""
    products = [p for p in catalog.products.values() if p.vertical in SHOPPABLE]
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    attempts = 0
    while len(out) < count and attempts < count * 50:
        attempts += 1
        product = rng.choice(products)
        if rng.random() < 0.5:
            names = [product.name, *[a for a in product.aliases if a.isascii()]]
            text = rng.choice(EN_TEMPLATES).format(
                n=rng.choice(EN_NUMBERS),
                item=rng.choice(names),
                place=rng.choice(EN_PLACES),
                time=rng.choice(EN_TIMES),
            )
            locale = "en"
        else:
            names = [product.name_zh, *[a for a in product.aliases if not a.isascii()]]
            text = rng.choice(ZH_TEMPLATES).format(
                zn=rng.choice(ZH_NUMBERS),
                item=rng.choice(names),
                place=rng.choice(ZH_PLACES),
                time=rng.choice(ZH_TIMES),
            )
            locale = "zh-CN"
        if text not in seen:
            seen.add(text)
            out.append((text, locale))
    return out


def zipf_workload(sentences: list[tuple[str, str]], total: int, s: float, rng: random.Random) -> list[int]:
    weights = [1 / (rank**s) for rank in range(1, len(sentences) + 1)]
    return rng.choices(range(len(sentences)), weights=weights, k=total)


class DelayedBackend:
    """Adds a fixed latency to each call of another backend (a stand-in for a model on a GPU)."""

    def __init__(self, inner: Backend, delay_ms: float) -> None:
        self.inner = inner
        self.name = inner.name
        self.delay_s = delay_ms / 1000

    async def parse(self, requests: list[ParseRequest]) -> list[ParseResult]:
        await asyncio.sleep(self.delay_s)
        return await self.inner.parse(requests)


@dataclass
class Phase:
    name: str
    cache: bool
    single_flight: bool


PHASES = [
    Phase("baseline", cache=False, single_flight=False),
    Phase("single-flight", cache=False, single_flight=True),
    Phase("cache + single-flight", cache=True, single_flight=True),
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_phase(
    phase: Phase,
    args: argparse.Namespace,
    catalog: Catalog,
    redis: Any,
    sentences: list[tuple[str, str]],
    workload: list[int],
    progress: Progress,
) -> dict[str, Any]:
    await redis.flushdb()
    settings = GatewaySettings(
        backends="rules",
        cache_ttl_s=600 if phase.cache else 0,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        tenant_requests_per_s=0,
        tenant_tokens_per_min=0,
    )
    from yiju.model_gateway.backends.rules import RulesBackend

    backend: Backend = RulesBackend(catalog)
    if args.model_ms > 0:
        backend = DelayedBackend(backend, args.model_ms)
    assembly = assemble(settings, catalog, redis, backends=[backend], single_flight=phase.single_flight)
    server = grpc.aio.server()
    pb_grpc.add_ModelGatewayServiceServicer_to_server(assembly.servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.ModelGatewayServiceStub(channel)
    for i in range(50):  # warm the channel and the code paths (sentences outside the workload)
        await stub.ParseIntent(pb.ParseIntentRequest(text=f"warm-up latte #{i}", tenant_id="bench"))
    chain_before = (assembly.gateway.stats.sentences, assembly.gateway.stats.calls)
    pipe_before = (assembly.pipeline.stats.cache_hits, assembly.pipeline.stats.shared)
    task = progress.add_task(phase.name, total=len(workload))
    latencies: list[float] = []
    failures = 0
    cursor = 0

    async def client() -> None:
        nonlocal cursor, failures
        while cursor < len(workload):
            index = workload[cursor]
            cursor += 1
            text, locale = sentences[index]
            request = pb.ParseIntentRequest(
                text=text, locale=locale, tenant_id="bench", address_labels=["home", "office"]
            )
            began = time.perf_counter()
            try:
                await stub.ParseIntent(request, timeout=30)
            except grpc.aio.AioRpcError:
                failures += 1
            latencies.append(time.perf_counter() - began)
            progress.advance(task)

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - began
    backend_sentences = assembly.gateway.stats.sentences - chain_before[0]
    backend_calls = assembly.gateway.stats.calls - chain_before[1]
    cache_hits = assembly.pipeline.stats.cache_hits - pipe_before[0]
    shared = assembly.pipeline.stats.shared - pipe_before[1]
    await channel.close()
    await server.stop(grace=None)
    await assembly.aclose()
    total = len(workload)
    return {
        "phase": phase.name,
        "cache": phase.cache,
        "single_flight": phase.single_flight,
        "requests": total,
        "failures": failures,
        "seconds": round(elapsed, 3),
        "sentences_per_s": round(total / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
        "backend_sentences": backend_sentences,
        "backend_calls": backend_calls,
        "mean_batch": round(backend_sentences / backend_calls, 2) if backend_calls else 0.0,
        "cache_hits": cache_hits,
        "single_flight_shared": shared,
        "backend_work_saved": round(1 - backend_sentences / total, 4),
    }


def table(results: list[dict[str, Any]], title: str) -> Table:
    out = Table(title=title)
    for column in (
        "run",
        "sentences/s",
        "p50 ms",
        "p99 ms",
        "backend sentences",
        "backend calls",
        "cache hits",
        "sf shared",
        "saved",
    ):
        out.add_column(column, justify="left" if column == "run" else "right")
    for r in results:
        out.add_row(
            r["phase"],
            f"{r['sentences_per_s']:.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            str(r["backend_sentences"]),
            str(r["backend_calls"]),
            str(r["cache_hits"]),
            str(r["single_flight_shared"]),
            f"{r['backend_work_saved']:.1%}",
        )
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    console = Console(width=max(Console().width, 120))
    catalog = load_catalog(REPO_ROOT / "catalog")
    rng = random.Random(args.seed)
    sentences = distinct_sentences(catalog, args.distinct, rng)
    workload = zipf_workload(sentences, args.requests, args.zipf, rng)
    with tempfile.TemporaryDirectory(prefix="yiju-bench-") as tmp:
        redis_server = RedisServer(free_port(), Path(tmp))
        await redis_server.start()
        import redis.asyncio as aioredis

        redis = aioredis.from_url(redis_server.url, decode_responses=True, max_connections=256)
        results = []
        try:
            with Progress(
                TextColumn("{task.description:<24}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                for phase in PHASES:
                    results.append(
                        await run_phase(phase, args, catalog, redis, sentences, workload, progress)
                    )
        finally:
            await redis.aclose()
            await redis_server.stop()
    title = (
        f"model gateway via gRPC: rules backend{f' + {args.model_ms:g} ms/call' if args.model_ms else ''}, "
        f"{args.requests} requests, {len(sentences)} distinct sentences, Zipf s={args.zipf}, "
        f"{args.concurrency} clients"
    )
    console.print(table(results, title))
    doc = {
        "benchmark": "model gateway (gRPC ParseIntent)",
        "config": {
            "requests": args.requests,
            "distinct_sentences": len(sentences),
            "distinct_sentences_requested": len(set(workload)),
            "zipf_s": args.zipf,
            "concurrency": args.concurrency,
            "max_batch": args.max_batch,
            "max_wait_ms": args.max_wait_ms,
            "model_ms": args.model_ms,
            "backend": "rules",
            "seed": args.seed,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "results": results,
    }
    console.print(f"wrote {write_json(Path(args.out), doc)}")
    return doc


def write_json(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--distinct", type=int, default=400, help="distinct sentences in the workload")
    parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent s of sentence popularity")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--model-ms", type=float, default=0.0, help="extra latency per backend call")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=str(REPO_ROOT / "bench" / "gateway.json"))
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
