"""Batch throughput and latency of the transformers backend on a local Qwen checkpoint.

    python -m yiju_infra.gpu.bench_transformers /models/Qwen3-8B            # on a GPU node
    python -m yiju_infra.gpu.bench_transformers --tiny                      # CPU smoke check

For each batch size (default 1, 8, 32) it sends batches of catalog sentences (English and Chinese)
through the backend's real path (chat template with tools, left-padded batched generate, Qwen
<tool_call> parsing and schema validation) and records latency per batch, sentences/s, generated
tokens/s and the share of answers that passed validation. `--tiny` builds a random 2-layer Qwen3
in a temporary folder (offline) to check that the script and backend run end to end. Writes JSON.
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
from pathlib import Path
from typing import Any

from yiju.common.catalog import load_catalog
from yiju.common.settings import REPO_ROOT
from yiju.model_gateway.backends.transformers_backend import TransformersBackend
from yiju.model_gateway.config import TransformersSettings
from yiju.model_gateway.tools import ParseRequest, ParseResult
from yiju_infra.bench.gateway import distinct_sentences, write_json


def device_info(backend: TransformersBackend) -> dict[str, Any]:
    import torch
    import transformers

    info: dict[str, Any] = {
        "device": backend.device,
        "dtype": str(next(backend._model.parameters()).dtype),
        "architecture": type(backend._model).__name__,
        "parameters": sum(p.numel() for p in backend._model.parameters()),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    if backend.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(backend.device)
        info["gpu_memory_gib"] = round(
            torch.cuda.get_device_properties(backend.device).total_memory / 2**30, 1
        )
    return info


async def measure(
    backend: TransformersBackend, requests: list[ParseRequest], batch: int, rounds: int
) -> dict[str, Any]:
    import torch

    generated = 0
    original = backend.generate

    def counting(prompts: list[str]) -> list[tuple[str, int]]:
        nonlocal generated
        out = original(prompts)
        prompt_tokens = backend._tokenizer(prompts, add_special_tokens=False)["input_ids"]
        generated += sum(used - len(ids) for (_, used), ids in zip(out, prompt_tokens, strict=True))
        return out

    backend.generate = counting  # type: ignore[method-assign]
    await backend.parse(requests[:batch])  # warm-up (kernels, allocator, caches)
    generated = 0
    latencies: list[float] = []
    valid = total = 0
    for r in range(rounds):
        chunk = [requests[(r * batch + i) % len(requests)] for i in range(batch)]
        if backend.device.startswith("cuda"):
            torch.cuda.synchronize()
        began = time.perf_counter()
        answers = await backend.parse(chunk)
        if backend.device.startswith("cuda"):
            torch.cuda.synchronize()
        latencies.append(time.perf_counter() - began)
        valid += sum(isinstance(a, ParseResult) for a in answers)
        total += len(answers)
    backend.generate = original  # type: ignore[method-assign]
    elapsed = sum(latencies)
    return {
        "batch_size": batch,
        "rounds": rounds,
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "latency_max_ms": round(max(latencies) * 1000, 1),
        "sentences_per_s": round(total / elapsed, 2),
        "generated_tokens_per_s": round(generated / elapsed, 1),
        "valid_answers": round(valid / total, 3),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tiny-qwen-") as tmp:
        model_dir = args.model_dir
        if args.tiny:
            from yiju_infra.gpu.tiny_qwen import build_tiny_qwen

            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            model_dir = str(build_tiny_qwen(Path(tmp)))
        if not model_dir:
            raise SystemExit("give a checkpoint folder, or --tiny")
        settings = TransformersSettings(
            model_dir=model_dir,
            device=args.device,
            dtype=args.dtype,
            max_new_tokens=args.max_new_tokens,
            max_batch=max(args.batch_sizes),
        )
        backend = TransformersBackend(settings)
        began = time.perf_counter()
        await backend.ensure_loaded()
        load_s = time.perf_counter() - began
        catalog = load_catalog(REPO_ROOT / "catalog")
        sentences = distinct_sentences(catalog, 256, random.Random(args.seed))
        requests = [
            ParseRequest(text, locale, address_labels=("home", "office")) for text, locale in sentences
        ]
        results = []
        for batch in args.batch_sizes:
            result = await measure(backend, requests, batch, args.rounds)
            results.append(result)
            print(json.dumps(result))
        doc = {
            "benchmark": "transformers backend batch throughput",
            "model_dir": "tiny random Qwen3 (smoke check)" if args.tiny else model_dir,
            "load_seconds": round(load_s, 2),
            "max_new_tokens": args.max_new_tokens,
            "machine": device_info(backend),
            "results": results,
        }
    print(f"wrote {write_json(Path(args.out), doc)}")
    return doc


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model_dir", nargs="?", default="", help="local Qwen2/Qwen3 checkpoint folder")
    parser.add_argument("--tiny", action="store_true", help="use a tiny random Qwen3 built offline")
    parser.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=str(REPO_ROOT / "bench" / "transformers.json"))
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(run(parse_args()))
