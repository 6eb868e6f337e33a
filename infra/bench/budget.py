"""The per-sentence budget: what one sentence costs the platform, counted on a real one.

    python -m yiju_infra.bench.budget                      # 200 sentences at 40/s: table + bench/budget.json
    python -m yiju_infra.bench.budget --profile            # and a py-spy profile of every service

Starts its own LocalPlatform (Apache Kafka by default, Redis, the five services, rules backend) on free
ports in a temporary data dir, warms it up, then counts over an idle window (the platform's background
work: sweeper, health checks) and over a load of --sentences sentences of the default mix (the load
generator, via Kafka intake), and reports, per completed sentence, net of the idle window:

- Kafka produces and consumes (the services' `yiju_events_published_total` / `_consumed_total`; the
  sentence's own IntentSubmitted, produced by the client, counted apart);
- Redis round trips and commands as the services' clients send them (`yiju_redis_round_trips_total`:
  a pipeline is one; `yiju_redis_commands_total`: a script call is one), and the commands Redis ran
  (`INFO commandstats`, scripts' own commands included), by command;
- spans (lines of the local span files whose span started in the window), by service and kind, and the
  number of traces they make;
- gRPC calls (client spans with `rpc.system=grpc`), by method;
- CPU per process (/proc), in ms per sentence.

With --profile, a second load at --profile-rate is profiled with `py-spy record --gil` on every service
at once, and each service's CPU per sentence is split into the Kafka client, Redis, spans, protobuf,
gRPC, faststream, handler code and the event loop (yiju_infra.bench.profile_split); the broker and Redis
are their own processes. py-spy: `.venv/bin/pip install py-spy`.

With --model-sim the platform runs in model mode (the settings of `make bench BENCH_ARGS="--model sim"`:
the Kafka model path, the gateway's openai backend against the simulated Qwen, no cache or single-flight)
and the simulator answers with --model-p50-ms / --model-p99-ms a turn on --model-slots slots; the
simulator is not part of the platform and its CPU is reported apart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from yiju.common.catalog import load_catalog
from yiju.loadgen.profiles import Constant
from yiju.loadgen.runner import LoadRunner
from yiju_infra.bench import cpu
from yiju_infra.bench.broker_info import broker_in_use
from yiju_infra.bench.budget_counts import (
    read_redis_counts,
    scrape_service_counts,
    span_lines,
    tally_spans,
)
from yiju_infra.bench.console import bench_console
from yiju_infra.bench.model_bench import ModelBenchConfig, SimServer, platform_env
from yiju_infra.bench.platform_load import load_config_for
from yiju_infra.bench.profile_split import shares, split_profile
from yiju_infra.bench.run_info import machine_summary
from yiju_infra.local.platform import SERVICES, LocalPlatform

REPO_ROOT = Path(__file__).resolve().parents[2]
PY_SPY = Path(sys.executable).with_name("py-spy")


def _spans_size(spans_dir: Path) -> int:
    return sum(p.stat().st_size for p in spans_dir.glob("*.jsonl")) if spans_dir.exists() else 0


class Snapshot:
    """Every counter the budget reads, at one moment."""

    def __init__(
        self, at_ns: int, services: dict[str, dict[str, float]], redis: dict[str, float], cpu_s: Any
    ) -> None:
        self.at_ns, self.services, self.redis, self.cpu = at_ns, services, redis, cpu_s


async def snapshot(platform: LocalPlatform, redis: Redis) -> Snapshot:
    ports = {name: platform.ports.metrics(name) for name in SERVICES}
    return Snapshot(
        time.time_ns(),
        await scrape_service_counts(ports),
        await read_redis_counts(redis),
        cpu.sample(platform.pids),
    )


def window(before: Snapshot, after: Snapshot, spans_dir: Path) -> dict[str, Any]:
    """Counts between two snapshots (not yet divided by anything)."""
    counts = {
        name: {
            key: value - before.services[name].get(key, 0.0) for key, value in after.services[name].items()
        }
        for name in after.services
    }
    redis = {k: v - before.redis.get(k, 0.0) for k, v in after.redis.items()}
    spans = tally_spans(span_lines(spans_dir), before.at_ns, after.at_ns)
    seconds = max((after.at_ns - before.at_ns) / 1e9, 1e-9)
    used = cpu.usage(before.cpu, after.cpu)
    return {
        "seconds": seconds,
        "produces": sum(c["produces"] for c in counts.values()),
        "consumes": sum(c["consumes"] for c in counts.values()),
        "produces_by_service": {name: c["produces"] for name, c in counts.items()},
        "consumes_by_service": {name: c["consumes"] for name, c in counts.items()},
        "redis_round_trips": sum(c["redis_round_trips"] for c in counts.values()),
        "redis_client_commands": sum(c["redis_client_commands"] for c in counts.values()),
        "redis_round_trips_by_service": {name: c["redis_round_trips"] for name, c in counts.items()},
        "redis_server_commands": sum(
            v for k, v in redis.items() if k.startswith("calls:") and k != "calls:info"
        ),
        "redis_by_command": {
            k.removeprefix("calls:"): v
            for k, v in redis.items()
            if k.startswith("calls:") and v and k != "calls:info"
        },
        "spans": spans.total,
        "spans_by_service": dict(spans.by_service),
        "spans_by_kind": dict(spans.by_kind),
        "spans_by_name": dict(spans.by_name),
        "traces": len(spans.traces),
        "grpc_calls": sum(spans.grpc_calls.values()),
        "grpc_by_method": dict(spans.grpc_calls),
        "cpu_s": {
            k: v / 100 * seconds for k, v in used.items() if k not in ("machine", "others", "all ours")
        },
        "cpu_percent": used,
    }


def per_sentence(load: dict[str, Any], idle: dict[str, Any], sentences: int) -> dict[str, Any]:
    """The load window's counts net of the idle window's rate over the same time, per sentence."""
    scale = load["seconds"] / idle["seconds"]

    def net(key: str) -> float:
        return round((load[key] - idle[key] * scale) / sentences, 3)

    def net_map(key: str) -> dict[str, float]:
        names = set(load[key]) | set(idle[key])
        values = {n: (load[key].get(n, 0.0) - idle[key].get(n, 0.0) * scale) / sentences for n in names}
        return {n: round(v, 3) for n, v in sorted(values.items(), key=lambda kv: -kv[1]) if abs(v) >= 0.005}

    # CPU is not netted: an idle consumer's polling turns into fetches that carry records under load,
    # so the idle window's CPU is not a background the load adds to.
    cpu_ms = {name: round(1000 * used / sentences, 3) for name, used in load["cpu_s"].items()}
    platform_ms = round(sum(v for k, v in cpu_ms.items() if k != "loadgen"), 3)
    return {
        "sentences": sentences,
        "produces": net("produces"),
        "produces_by_client": 1.0,  # the sentence's IntentSubmitted (the load generator, via Kafka intake)
        "consumes": net("consumes"),
        "redis_round_trips": net("redis_round_trips"),
        "redis_client_commands": net("redis_client_commands"),
        "redis_server_commands": net("redis_server_commands"),
        "spans": net("spans"),
        "grpc_calls": net("grpc_calls"),
        "traces_per_sentence": round(load["traces"] / sentences, 3),
        "produces_by_service": net_map("produces_by_service"),
        "consumes_by_service": net_map("consumes_by_service"),
        "redis_round_trips_by_service": net_map("redis_round_trips_by_service"),
        "redis_by_command": net_map("redis_by_command"),
        "spans_by_service": net_map("spans_by_service"),
        "spans_by_kind": net_map("spans_by_kind"),
        "spans_by_name": net_map("spans_by_name"),
        "grpc_by_method": net_map("grpc_by_method"),
        "cpu_ms_by_process": cpu_ms,
        "cpu_ms_per_sentence": platform_ms,
    }


def _listed(values: dict[str, float], limit: int = 10) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in list(values.items())[:limit])


def budget_table(budget: dict[str, Any], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("per sentence")
    table.add_column("count", justify="right")
    table.add_column("where")
    rows = [
        (
            "Kafka produces",
            f"{budget['produces']:.2f} (+{budget['produces_by_client']:.0f} by the client)",
            _listed(budget["produces_by_service"]),
        ),
        ("Kafka consumes", f"{budget['consumes']:.2f}", _listed(budget["consumes_by_service"])),
        (
            "Redis round trips",
            f"{budget['redis_round_trips']:.2f}",
            "a pipeline is one: " + _listed(budget["redis_round_trips_by_service"]),
        ),
        ("Redis commands sent", f"{budget['redis_client_commands']:.2f}", "a script call is one"),
        (
            "Redis commands run",
            f"{budget['redis_server_commands']:.2f}",
            "scripts' own included: " + _listed(budget["redis_by_command"]),
        ),
        ("spans", f"{budget['spans']:.2f}", _listed(budget["spans_by_kind"])),
        ("gRPC calls", f"{budget['grpc_calls']:.2f}", _listed(budget["grpc_by_method"])),
        ("traces", f"{budget['traces_per_sentence']:.2f}", "one per sampled sentence"),
        ("CPU ms (platform)", f"{budget['cpu_ms_per_sentence']:.2f}", _listed(budget["cpu_ms_by_process"])),
    ]
    for row in rows:
        table.add_row(*row)
    return table


def profile_table(profiles: dict[str, Any]) -> Table:
    categories: list[str] = []
    for entry in profiles["services"].values():
        categories += [c for c in entry["ms_per_sentence_by_category"] if c not in categories]
    table = Table(title="CPU ms per sentence, by what it was spent on (py-spy --gil)", title_justify="left")
    table.add_column("process")
    table.add_column("total", justify="right")
    for c in categories:
        table.add_column(c, justify="right")
    for name, entry in profiles["services"].items():
        by = entry["ms_per_sentence_by_category"]
        table.add_row(name, f"{entry['ms_per_sentence']:.2f}", *(f"{by.get(c, 0.0):.2f}" for c in categories))
    for name, ms in profiles["other_processes_ms_per_sentence"].items():
        table.add_row(name, f"{ms:.2f}", *("" for _ in categories))
    return table


class Budget:
    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        env = {"YIJU_SYNTHETIC_USERS": str(args.users), "YIJU_GATEWAY_BACKENDS": "rules"}
        self.sim: SimServer | None = None
        self.model: ModelBenchConfig | None = None
        if args.model_sim:
            self.sim = SimServer()
            self.model = ModelBenchConfig(
                p50_ms=args.model_p50_ms,
                p99_ms=args.model_p99_ms,
                slots=args.model_slots,
                users=args.users,
                sampler="full",
            )
            env = platform_env(self.model, self.sim.url)
        for item in args.env:
            key, _, value = item.partition("=")
            env[key.strip()] = value
        self.platform = LocalPlatform.on_free_ports(
            Path(tempfile.mkdtemp(prefix="yiju-budget-")), extra_env=env
        )

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)

    async def run(self) -> dict[str, Any]:
        args, plat = self.args, self.platform
        redis = Redis.from_url(plat.redis_url, decode_responses=True)
        try:
            if self.sim is not None and self.model is not None:
                await self.sim.start(self.model.sim_run())
            await plat.start_infra()
            await plat.start_services()
            await plat.wait_ready(timeout=180)
            settings = plat.settings()
            catalog = load_catalog(settings.catalog_dir, args.users)
            spans_dir = Path(settings.data_dir) / "spans"
            async with LoadRunner(settings, catalog, load_config_for(plat, "kafka", args.users)) as runner:
                self.say(f"platform up ({broker_in_use(plat)['description']}); warm-up ...")
                await runner.run_phase(Constant(args.rate, max(args.warmup, 1) / args.rate), "warm-up")
                await runner.drain(60)
                await self._spans_settled(spans_dir)
                self.say(f"idle window {args.idle_s:g} s ...")
                first = await snapshot(plat, redis)
                await asyncio.sleep(args.idle_s)
                second = await snapshot(plat, redis)
                idle = window(first, second, spans_dir)
                self.say(f"load: {args.sentences} sentences at {args.rate:g}/s ...")
                start = await snapshot(plat, redis)
                phase = await runner.run_phase(Constant(args.rate, args.sentences / args.rate), "budget")
                await runner.drain(120)
                await self._spans_settled(spans_dir)
                end = await snapshot(plat, redis)
                load = window(start, end, spans_dir)
                result = runner.phase_result(phase, final=True)
                completed = result["completed"]
                budget = per_sentence(load, idle, max(completed, 1))
                profiles = await self._profile(runner) if args.profile else None
        finally:
            await redis.aclose()
            await plat.stop_all()
            if self.sim is not None:
                await self.sim.aclose()
            shutil.rmtree(plat.data_dir, ignore_errors=True)
        return {
            "tool": "yiju_infra.bench.budget",
            "label": args.label,
            "model": (
                {"p50_ms": args.model_p50_ms, "p99_ms": args.model_p99_ms, "slots": args.model_slots}
                if args.model_sim
                else None
            ),
            "broker": broker_in_use(plat),
            "sentences": args.sentences,
            "rate": args.rate,
            "completed": completed,
            "lost": result["lost"],
            "duplicated": result["duplicated"],
            "budget": budget,
            "idle_window": {
                k: idle[k] for k in ("seconds", "produces", "consumes", "redis_round_trips", "spans")
            },
            "env": args.env,
            "profile": profiles,
            "machine": machine_summary(),
        }

    async def _spans_settled(self, spans_dir: Path, timeout: float = 30.0) -> None:
        """Waits until the span files stop growing (each service's batch processor exports every 0.5 s)."""
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            size = await asyncio.to_thread(_spans_size, spans_dir)
            if size == last:
                return
            last = size
            await asyncio.sleep(1.5)

    async def _profile(self, runner: LoadRunner) -> dict[str, Any]:
        """py-spy on every service during a load at --profile-rate; CPU per sentence split by category."""
        args, plat = self.args, self.platform
        if not PY_SPY.exists():
            raise SystemExit(f"--profile needs py-spy: {PY_SPY.parent}/pip install py-spy")
        seconds = args.profile_s
        out_dir = Path(args.out).parent / "profiles"
        out_dir.mkdir(parents=True, exist_ok=True)
        pids = plat.pids
        self.say(f"profile: {args.profile_rate:g}/s for {seconds:g} s, py-spy on {', '.join(SERVICES)} ...")
        spies = {
            name: subprocess.Popen(  # noqa: ASYNC220 (started, not waited on: they run beside the load)
                [
                    str(PY_SPY),
                    "record",
                    "--pid",
                    str(pids[name]),
                    "--duration",
                    str(int(seconds)),
                    "--rate",
                    "100",
                    "--full-filenames",
                    "--gil",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--output",
                    str(out_dir / f"{name}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name in SERVICES
        }
        first = cpu.sample(pids)
        phase = await runner.run_phase(Constant(args.profile_rate, seconds), "profile")
        done = cpu.sample(pids)
        await runner.drain(120)
        for spy in spies.values():
            await asyncio.to_thread(spy.wait)
        completed = max(runner.phase_result(phase, final=True)["completed"], 1)
        wall = done.at - first.at
        used = cpu.usage(first, done)
        ms = {name: used.get(name, 0.0) / 100 * wall * 1000 / completed for name in used}
        services: dict[str, Any] = {}
        for name in SERVICES:
            path = out_dir / f"{name}.txt"
            split = shares(split_profile(path.read_text().splitlines())) if path.exists() else {}
            services[name] = {
                "ms_per_sentence": round(ms.get(name, 0.0), 3),
                "share_by_category": {k: round(v, 3) for k, v in split.items()},
                "ms_per_sentence_by_category": {k: round(v * ms.get(name, 0.0), 3) for k, v in split.items()},
            }
        others = {
            n: round(v, 3) for n, v in ms.items() if n not in SERVICES and n not in ("all ours", "machine")
        }
        return {
            "rate": args.profile_rate,
            "seconds": seconds,
            "completed": completed,
            "how": (
                "py-spy record --gil --nonblocking --full-filenames --rate 100 --format raw on each "
                "service during the load; CPU per process from /proc over the same window; a sample is "
                "charged to the innermost frame of a known library (yiju_infra.bench.profile_split)"
            ),
            "services": services,
            "other_processes_ms_per_sentence": others,
            "cpu_percent": used,
        }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m yiju_infra.bench.budget", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--rate", type=float, default=40.0, help="sentences/s offered while counting")
    parser.add_argument("--warmup", type=int, default=40, help="sentences before counting")
    parser.add_argument("--idle-s", type=float, default=5.0, help="idle window for the background rate")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--label", default="", help="a name for this measurement (e.g. before, after)")
    parser.add_argument("--env", action="append", default=[], metavar="K=V", help="extra service environment")
    parser.add_argument("--profile", action="store_true", help="also profile every service with py-spy")
    parser.add_argument("--profile-rate", type=float, default=150.0)
    parser.add_argument("--profile-s", type=float, default=30.0)
    parser.add_argument("--model-sim", action="store_true", help="model mode against the simulated Qwen")
    parser.add_argument("--model-p50-ms", type=float, default=1200.0, help="per turn, with --model-sim")
    parser.add_argument("--model-p99-ms", type=float, default=6000.0, help="per turn, with --model-sim")
    parser.add_argument("--model-slots", type=int, default=256, help="with --model-sim")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "budget.json")
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = bench_console()
    results = await Budget(args, console).run()
    console.print(
        budget_table(
            results["budget"], f"per-sentence budget {args.label} ({results['completed']} sentences)"
        ),
        width=max(console.width, 150),
    )
    if results["profile"]:
        console.print(profile_table(results["profile"]), width=max(console.width, 150))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2))
    console.print(f"wrote {args.out}")
    return 0 if not results["lost"] and not results["duplicated"] else 1


if __name__ == "__main__":
    sys.exit(uvloop.run(main()))
