"""`python -m yiju.model_gateway.sim`: the simulated Qwen server as a process (see the package doc)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import uvloop

from yiju.model_gateway.sim.config import SimConfig
from yiju.model_gateway.sim.server import SimulatedQwen


def parse_args(argv: Sequence[str] | None = None) -> SimConfig:
    parser = argparse.ArgumentParser(prog="python -m yiju.model_gateway.sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default="qwen-sim", help="the served model name")
    parser.add_argument("--catalog-dir", type=Path, default=None)
    parser.add_argument("--p50-ms", type=float, default=1200.0)
    parser.add_argument("--p99-ms", type=float, default=6000.0)
    parser.add_argument("--slots", type=int, default=256, help="requests served at once (max-num-seqs)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--search-rate", type=float, default=1.0)
    parser.add_argument("--quote-rate", type=float, default=0.0)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--hang-rate", type=float, default=0.0)
    parser.add_argument("--hang-s", type=float, default=600.0)
    parser.add_argument("--garbage-rate", type=float, default=0.0)
    parser.add_argument("--schema-break-rate", type=float, default=0.0)
    parser.add_argument("--slow-rate", type=float, default=0.0, help="share of sentences served --slow-ms")
    parser.add_argument("--slow-ms", type=float, default=30_000.0)
    args = parser.parse_args(argv)
    return SimConfig(**{k: v for k, v in vars(args).items()})


async def serve(config: SimConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with SimulatedQwen(config) as sim:
        print(
            f"simulated Qwen on {sim.url} (p50 {config.p50_ms:g} ms, p99 {config.p99_ms:g} ms, "
            f"{config.slots} slots); YIJU_OPENAI_BASE_URL={sim.url}",
            flush=True,
        )
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = parse_args(argv)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    uvloop.run(serve(config))  # the benchmark's model server: the cheaper loop, as the services run
    return 0


if __name__ == "__main__":
    sys.exit(main())
