"""Settings side by side: the platform's CPU per sentence and p99 at one steady rate, per variant.

    python -m yiju_infra.bench.settings_ab --rate 150 --step-s 40 \\
        YIJU_KAFKA_COMMIT_INTERVAL_MS=0,YIJU_KAFKA_FETCH_MAX_WAIT_MS=20,YIJU_KAFKA_FETCH_MIN_BYTES=1 ""

Each variant is a comma-separated list of service settings ("" is the defaults). For each, a fresh
platform (Apache Kafka, Redis, the five services, rules backend, the production sampler unless a variant
names another) is started, warmed up for 10 s, then offered `--rate` sentences/s via Kafka intake for
`--step-s` seconds; CPU is read from /proc over the step's middle (5 s trimmed at each end, so start-up
and drain are not in it). `--repeat N` runs the variants round-robin N times (the machine drifts; only
differences larger than the spread between repeats are real). Writes one JSON line per run to stdout and
the list to `--out`. This is how the rows of docs/performance.md §10 were measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
from rich.console import Console

from yiju.common.catalog import load_catalog
from yiju.loadgen.profiles import Constant
from yiju.loadgen.runner import LoadRunner
from yiju_infra.bench import cpu
from yiju_infra.bench.console import bench_console
from yiju_infra.bench.platform_load import load_config_for
from yiju_infra.bench.run_info import machine_summary
from yiju_infra.bench.samplers import sampler_env
from yiju_infra.local.platform import LocalPlatform

PRODUCTION_SAMPLER = sampler_env("production")
TRIM_S = 5.0


def parse_variant(text: str) -> dict[str, str]:
    """ "K=V,K=V" -> {K: V}; "" -> {} (the defaults)."""
    out: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"a variant's settings are K=V pairs, got {item!r}")
        out[key.strip()] = value.strip()
    return out


async def measure(variant: dict[str, str], rate: float, step_s: float, users: int) -> dict[str, Any]:
    """One fresh platform with these settings: CPU ms per sentence (platform, by process) and latency."""
    env = {"YIJU_GATEWAY_BACKENDS": "rules", "YIJU_SYNTHETIC_USERS": str(users), **PRODUCTION_SAMPLER}
    env.update(variant)
    platform = LocalPlatform.on_free_ports(Path(tempfile.mkdtemp(prefix="yiju-ab-")), extra_env=env)
    try:
        await platform.start_infra()
        await platform.start_services()
        await platform.wait_ready(timeout=180)
        settings = platform.settings()
        catalog = load_catalog(settings.catalog_dir, users)
        async with LoadRunner(settings, catalog, load_config_for(platform, "kafka", users)) as runner:
            await runner.run_phase(Constant(rate, 10), "warm-up")
            await runner.drain(60)
            step = asyncio.create_task(runner.run_phase(Constant(rate, step_s), "step"))
            await asyncio.sleep(TRIM_S)
            before = cpu.sample(dict(platform.pids))
            await asyncio.sleep(max(step_s - 2 * TRIM_S, 1.0))
            after = cpu.sample(dict(platform.pids))
            phase = await step
            await runner.drain(60)
            result = runner.phase_result(phase, final=True)
    finally:
        await platform.stop_all()
        shutil.rmtree(platform.data_dir, ignore_errors=True)
    seconds = after.at - before.at
    used = cpu.usage(before, after)
    sentences = rate * seconds  # offered at a constant rate over the window
    latency = result.get("latency_ms", {})
    return {
        "variant": variant,
        "rate": rate,
        "completed": result["completed"],
        "lost": result["lost"],
        "duplicated": result["duplicated"],
        "p50_ms": latency.get("p50"),
        "p99_ms": latency.get("p99"),
        "cpu_ms_per_sentence": cpu.platform_ms_per_sentence(used, seconds, round(sentences)),
        "cpu_ms_per_sentence_by_process": cpu.ms_per_sentence_by_process(used, seconds, round(sentences)),
        "cpu_percent": used,
    }


def write_report(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m yiju_infra.bench.settings_ab", description=__doc__)
    parser.add_argument("variants", nargs="+", help='comma-separated K=V settings per variant ("": defaults)')
    parser.add_argument("--rate", type=float, default=150.0, help="sentences/s offered (default 150)")
    parser.add_argument("--step-s", type=float, default=40.0, help="seconds per step (default 40)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds over the variants (default 1)")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--out", default="bench/settings_ab.json")
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console: Console = bench_console()
    variants = [parse_variant(v) for v in args.variants]
    runs: list[dict[str, Any]] = []
    started = time.time()
    total = len(variants) * args.repeat
    for round_no in range(args.repeat):
        for variant in variants:
            label = ", ".join(f"{k}={v}" for k, v in variant.items()) or "defaults"
            console.print(f"[{len(runs) + 1}/{total}] {label}: {args.rate:g}/s for {args.step_s:g} s ...")
            run = await measure(variant, args.rate, args.step_s, args.users)
            run["round"] = round_no + 1
            runs.append(run)
            console.print(
                f"    CPU {run['cpu_ms_per_sentence']:.2f} ms/sentence, "
                f"p50/p99 {run['p50_ms']}/{run['p99_ms']} ms, completed {run['completed']}, "
                f"lost {run['lost']}, duplicated {run['duplicated']}, "
                f"others {run['cpu_percent'].get('others')} %"
            )
            print(json.dumps(run), flush=True)
    write_report(
        Path(args.out),
        json.dumps(
            {
                "tool": "yiju_infra.bench.settings_ab",
                "rate": args.rate,
                "step_s": args.step_s,
                "runs": runs,
                "seconds": round(time.time() - started, 1),
                "machine": machine_summary(),
            },
            indent=2,
        ),
    )
    console.print(f"wrote {args.out}")
    return 0 if all(r["lost"] == 0 and r["duplicated"] == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(uvloop.run(main()))
