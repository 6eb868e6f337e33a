"""GPU economics of the model path: `python -m yiju_infra.bench.model_economics`.

Sends N sentences (default 1,000) of the promotion mix (yiju.loadgen.workload: sentences templated
from the demo catalog in English and Chinese, drawn Zipf-like with s = 1.1, as `make bench` sends
them) through the gateway pipeline in this process (assemble(): cache, single-flight, micro-batcher,
chain openai,rules) against the simulated Qwen server, three times on a cold Redis:

  1. no cache, no single-flight   every sentence goes to the model;
  2. single-flight                identical sentences in flight at once share one conversation;
  3. cache + single-flight        plus the Redis exact-match cache.

For each it reports, per 1,000 sentences: model calls (HTTP requests, one per turn), conversations
(sentences the model saw), prompt and completion tokens, and simulated GPU-seconds.

The GPU model: a replica serves up to `slots` sequences at once (continuous batching, vLLM's
--max-num-seqs); a request occupies one slot for its service time, drawn lognormal with the given
p50/p99 (per turn). GPU-seconds = sum of the requests' service times / slots, i.e. each request is
charged its share of a full batch. It is a floor: it assumes the replica always runs full batches
and that the service time does not grow with the batch; a half-full replica costs up to twice that.
The simulator's sleeps are scaled by --time-scale (default 0.002) so a run takes seconds; the
service times and GPU-seconds are counted unscaled. Writes bench/model_economics.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yiju.common.catalog import Catalog, load_catalog, synthetic_users
from yiju.common.settings import REPO_ROOT
from yiju.loadgen.workload import Sentence, Workload
from yiju.model_gateway.assemble import assemble
from yiju.model_gateway.config import GatewaySettings, OpenAISettings
from yiju.model_gateway.sim import SimConfig, SimulatedQwen
from yiju.model_gateway.tools import ParseRequest
from yiju_infra.local.processes import free_port
from yiju_infra.local.redis_server import RedisServer


@dataclass(frozen=True)
class Mode:
    name: str
    cache: bool
    single_flight: bool


MODES = (
    Mode("no cache, no single-flight", cache=False, single_flight=False),
    Mode("single-flight", cache=False, single_flight=True),
    Mode("cache + single-flight", cache=True, single_flight=True),
)


def per_1000(value: float, sentences: int) -> float:
    return round(value * 1000 / sentences, 2)


async def run_mode(
    mode: Mode, args: argparse.Namespace, catalog: Catalog, redis: Any, sentences: list[Sentence]
) -> dict[str, Any]:
    await redis.flushdb()
    config = SimConfig(
        p50_ms=args.p50_ms,
        p99_ms=args.p99_ms,
        slots=args.slots,
        seed=args.seed,
        time_scale=args.time_scale,
        search_rate=args.search_rate,
        quote_rate=args.quote_rate,
    )
    user = next(iter(synthetic_users(1).values()))
    async with SimulatedQwen(config, catalog=catalog) as sim:
        settings = GatewaySettings(
            backends="openai,rules",
            cache_ttl_s=600 if mode.cache else 0,
            max_turns=args.max_turns,
            timeouts={"openai": 60.0},
            openai=OpenAISettings(base_url=sim.url, model=config.model, max_connections=args.slots),
        )
        assembly = assemble(settings, catalog, redis, single_flight=mode.single_flight)
        gate = asyncio.Semaphore(args.concurrency)
        backends: dict[str, int] = {}

        async def one(sentence: Sentence) -> None:
            request = ParseRequest(
                sentence.text,
                locale=sentence.locale,
                tenant_id=user.id,
                user_id=user.id,
                address_labels=tuple(user.addresses),
            )
            async with gate:
                result = await assembly.pipeline.parse_one(request)
            backends[result.backend] = backends.get(result.backend, 0) + 1

        began = time.monotonic()
        try:
            await asyncio.gather(*(one(s) for s in sentences))
        finally:
            await assembly.aclose()
        wall_s = time.monotonic() - began
        stats = sim.stats
    n = len(sentences)
    conversations = assembly.gateway.stats.sentences
    return {
        "mode": mode.name,
        "cache": mode.cache,
        "single_flight": mode.single_flight,
        "sentences": n,
        "answered_by": dict(sorted(backends.items())),
        "cache_hits": assembly.pipeline.stats.cache_hits,
        "single_flight_joins": assembly.pipeline.stats.shared,
        "per_1000_sentences": {
            "model_conversations": per_1000(conversations, n),
            "model_calls": per_1000(stats.requests, n),
            "tool_turns": per_1000(stats.look_ups, n),
            "prompt_tokens": per_1000(stats.prompt_tokens, n),
            "completion_tokens": per_1000(stats.completion_tokens, n),
            "service_seconds": per_1000(stats.busy_s, n),
            "gpu_seconds": per_1000(stats.busy_s / args.slots, n),
        },
        "wall_s": round(wall_s, 2),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    catalog = load_catalog(REPO_ROOT / "catalog")
    user = next(iter(synthetic_users(1).values()))
    workload = Workload.from_catalog(catalog, user, zipf_s=args.zipf, seed=args.seed)
    sentences = [workload.draw() for _ in range(args.sentences)]
    results = []
    with tempfile.TemporaryDirectory(prefix="yiju-economics-") as tmp:
        redis_server = RedisServer(free_port(), Path(tmp))
        await redis_server.start()
        import redis.asyncio as aioredis

        redis = aioredis.from_url(redis_server.url, decode_responses=True, max_connections=256)
        try:
            for mode in MODES:
                results.append(await run_mode(mode, args, catalog, redis, sentences))
                row = results[-1]["per_1000_sentences"]
                print(
                    f"{mode.name:<28} calls {row['model_calls']:>8.1f}  "
                    f"prompt tok {row['prompt_tokens']:>10.0f}  "
                    f"completion tok {row['completion_tokens']:>8.0f}  GPU-s {row['gpu_seconds']:>7.2f}  "
                    f"(per 1,000 sentences)",
                    flush=True,
                )
        finally:
            await redis.aclose()
            await redis_server.stop()
    doc = {
        "benchmark": "model economics (gateway pipeline in-process, simulated Qwen)",
        "gpu_model": (
            "GPU-seconds = sum of simulated service times / slots: each request is charged its share of a "
            "full continuous batch of `slots` sequences (a floor; a half-full replica costs up to 2x)"
        ),
        "config": {
            "sentences": args.sentences,
            "distinct_sentences_in_mix": len(workload.sentences),
            "distinct_sentences_drawn": len({s.text for s in sentences}),
            "zipf_s": args.zipf,
            "p50_ms": args.p50_ms,
            "p99_ms": args.p99_ms,
            "slots": args.slots,
            "max_turns": args.max_turns,
            "search_rate": args.search_rate,
            "quote_rate": args.quote_rate,
            "concurrency": args.concurrency,
            "time_scale": args.time_scale,
            "seed": args.seed,
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": results,
    }
    print(f"wrote {write_json(Path(args.out), doc)}")
    return doc


def write_json(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--p50-ms", type=float, default=1200.0)
    parser.add_argument("--p99-ms", type=float, default=6000.0)
    parser.add_argument("--slots", type=int, default=256)
    parser.add_argument("--max-turns", type=int, default=4)
    parser.add_argument("--search-rate", type=float, default=1.0)
    parser.add_argument("--quote-rate", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=256, help="sentences in flight at once")
    parser.add_argument("--time-scale", type=float, default=0.002)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", default=str(REPO_ROOT / "bench" / "model_economics.json"))
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
