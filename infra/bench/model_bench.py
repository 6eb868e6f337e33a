"""`make bench` in model mode: the whole pipeline with the simulated Qwen as its model.

    make bench BENCH_ARGS="--model sim --model-p50-ms 1200 --model-p99-ms 6000 --model-slots 256"
    python -m yiju_infra.bench.model_bench --model-p50-ms 1200 ...      (the same, directly)

One platform (its own Kafka unless given one, Redis, the five services) on free ports, planning on the
Kafka model path (YIJU_PLANNING_MODEL_PATH=kafka, deadline fallback `rules`), the gateway's chain
`openai,rules` pointed at a simulated Qwen server that the bench runs as its own process
(`python -m yiju.model_gateway.sim`, restarted with each run's settings on the same port). Every
sentence reaches the model: the gateway's cache and single-flight are off, so each order is one model
conversation (its turns: search the catalog, then answer), and the server counts calls per order
(the gateway sends the order id in the X-Yiju-Order-Id header). The runs, on one load generator:

1. capacity: a burst of --capacity-orders to a model that answers in 10 ms: what the platform itself
   (services, broker, gateway, simulator) completes per second on this machine when the model is no
   limit; it caps the bound (and --rules-capacity caps it);
   calibration: sentences at half the nominal bound, to measure the mean model time per sentence W;
   the bound is slots / W (Little's law), capped by that capacity;
2. main: --load-fraction of the bound for --step-s: sustained sentences/s (completions once the
   pipeline is full), end-to-end p50/p99 against the model's own p99, calls per order, lost, duplicated;
3. slow: two runs at the same rate (--slow-load-fraction of the bound with slow sentences): without
   slow sentences, then with --slow-share of them taking --slow-ms; the p99 of the others is compared;
4. orbit: a --orbit-link-ms link (every sentence's model call takes that long, one turn), --orbit-orders
   at --orbit-rate/s; planning and then the gateway are killed with SIGKILL while calls are in flight.
   A call lost with the gateway is not made again (by design): that order completes through the rules
   fallback at its deadline (counted as completed_by_deadline_fallback). Nothing may be lost, cancelled
   by the sweeper, or sent to the model twice.

At the end: every completed order reads COMPLETED in the projection, and the wallets were charged
exactly what was captured (no duplicate charge). Writes bench/model.json and bench/model.png.
`--quick` runs short steps with short model times (a smoke run, not a measurement).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvloop
from redis.asyncio.client import Redis
from rich.console import Console

from yiju.common.catalog import load_catalog
from yiju.common.redis import create_redis
from yiju.common.settings import REPO_ROOT
from yiju.loadgen.checks import money_check, verify_projection, wallet_spent
from yiju.loadgen.profiles import Constant
from yiju.loadgen.report import LiveProgress
from yiju.loadgen.runner import LoadRunner
from yiju.loadgen.stats import summarize
from yiju.loadgen.watcher import COMPLETED, Track
from yiju.model_gateway.kafka_worker import claim_key
from yiju_infra.bench import cpu
from yiju_infra.bench.console import bench_console
from yiju_infra.bench.model_plot import model_png
from yiju_infra.bench.model_summary import (
    expected_model_s,
    littles_bound,
    lognormal_mean_s,
    model_orders,
    orbit_verdict,
    per_1000,
    slow_comparison,
    sustained_rate,
    targets,
)
from yiju_infra.bench.platform_load import load_config_for
from yiju_infra.bench.run_info import config_summary, machine_summary
from yiju_infra.bench.samplers import SAMPLERS, sampler_env
from yiju_infra.local.model_sim import ModelSimProcess
from yiju_infra.local.platform import LocalPlatform
from yiju_infra.local.processes import free_port

HEADLINE = (
    "sentences_per_s",
    "bound_sentences_per_s",
    "offered_per_s",
    "p50_ms",
    "p99_ms",
    "model_p99_ms",
    "lost",
    "duplicated",
    "duplicate_model_calls",
    "model_calls_per_1000",
    "orbit",
    "targets",
)


@dataclass
class ModelBenchConfig:
    p50_ms: float = 1200.0
    p99_ms: float = 6000.0
    slots: int = 256
    seed: int = 7
    search_rate: float = 1.0  # sentences whose first turn searches the catalog (two turns)
    calibrate_s: float = 20.0
    step_s: float = 60.0
    load_fraction: float = 0.93  # of the bound, for the main run
    rate: float | None = None  # the main run's offered rate instead (no calibration)
    rules_capacity: float = 250.0  # sentences/s the rules path sustains on this machine (make bench)
    capacity_orders: int = 1500  # the burst that measures the platform's own capacity in model mode
    slow_share: float = 0.1
    slow_ms: float = 30_000.0
    slow_load_fraction: float = 0.8  # of the bound with slow sentences, for both slow runs
    orbit_link_ms: float = 90_000.0
    orbit_orders: int = 200
    orbit_rate: float = 2.0
    orbit_kills: bool = True
    deadline_s: float = 180.0  # YIJU_PLANNING_MODEL_DEADLINE_S
    sweep_after_s: float = 120.0  # YIJU_SWEEP_AFTER_S
    # YIJU_GATEWAY_MAX_INFLIGHT; 0: the model's slots and a quarter more. A conversation holds its place in
    # the gateway's window between its turns too (tool look-ups, the hops of the answer), when it holds no
    # model slot: a window of exactly `slots` leaves the model's slots idle for that share and queues the
    # overflow in Kafka instead of at the model (docs/gateway.md, "Sizing the window").
    max_inflight: int = 0
    runs: tuple[str, ...] = ("main", "slow", "orbit")
    users: int = 10_000
    via: str = "kafka"
    # The trace sampler (yiju_infra.bench.samplers): the chart's production default, 5 % of sentences
    # traced; "full" traces every one, as a local run without the chart does.
    sampler: str = "production"
    extra_env: dict[str, str] = field(default_factory=dict)
    out: Path = REPO_ROOT / "bench" / "model.json"
    png: Path = REPO_ROOT / "bench" / "model.png"

    @property
    def turns(self) -> float:
        return 1.0 + self.search_rate

    def sim_run(self, **overrides: Any) -> SimRun:
        """The simulated model's settings for a run: this configuration's, with `overrides`."""
        base = SimRun(self.p50_ms, self.p99_ms, self.slots, self.seed, self.search_rate)
        return SimRun(**{**base.__dict__, **overrides})

    @property
    def gateway_window(self) -> int:
        return self.max_inflight if self.max_inflight > 0 else self.slots + self.slots // 4

    @property
    def model_timeout_s(self) -> float:
        """The gateway's timeout of a model call: just short of the order's deadline."""
        return max(self.deadline_s - 10.0, self.deadline_s * 0.9)


@dataclass(frozen=True)
class SimRun:
    """The simulated model's settings for one run."""

    p50_ms: float
    p99_ms: float
    slots: int
    seed: int
    search_rate: float
    slow_rate: float = 0.0
    slow_ms: float = 30_000.0

    def argv(self) -> tuple[str, ...]:
        return (
            *("--p50-ms", f"{self.p50_ms:g}", "--p99-ms", f"{self.p99_ms:g}", "--slots", str(self.slots)),
            *("--seed", str(self.seed), "--search-rate", f"{self.search_rate:g}"),
            *("--slow-rate", f"{self.slow_rate:g}", "--slow-ms", f"{self.slow_ms:g}"),
        )


class SimServer:
    """The simulated Qwen as its own process on one port, restarted with each run's settings."""

    def __init__(self) -> None:
        self.data_dir: Path | None = None  # its log, made at the first start
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.process: ModelSimProcess | None = None
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=60, trust_env=False)
        return self._client

    @property
    def pid(self) -> int | None:
        return self.process.process.pid if self.process is not None else None

    async def start(self, run: SimRun) -> None:
        await self.stop()
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="yiju-model-sim-"))
        self.process = ModelSimProcess(self.data_dir, self.port, run.argv())
        await self.process.start()

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop()
            self.process = None

    async def orders(self) -> dict[str, dict[str, Any]]:
        reply = await self.client.get(self.url.removesuffix("/v1") + "/orders")
        reply.raise_for_status()
        return dict(reply.json())

    async def stats(self) -> dict[str, Any]:
        reply = await self.client.get(self.url.removesuffix("/v1") + "/stats")
        reply.raise_for_status()
        return dict(reply.json())

    async def aclose(self) -> None:
        await self.stop()
        if self._client is not None:
            await self._client.aclose()
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def platform_env(config: ModelBenchConfig, sim_url: str) -> dict[str, str]:
    """The platform's settings in model mode (every service gets them)."""
    return {
        "YIJU_SYNTHETIC_USERS": str(config.users),
        "YIJU_PLANNING_MODEL_PATH": "kafka",
        "YIJU_PLANNING_MODEL_DEADLINE_S": f"{config.deadline_s:g}",
        "YIJU_PLANNING_MODEL_DEADLINE_FALLBACK": "rules",
        "YIJU_GATEWAY_BACKENDS": "openai,rules",
        "YIJU_OPENAI_BASE_URL": sim_url,
        "YIJU_OPENAI_MODEL": "qwen-sim",
        # A connection per call in flight: the pool must not be the cap instead of the model's slots.
        "YIJU_OPENAI_MAX_CONNECTIONS": str(max(config.gateway_window, config.slots) + 64),
        "YIJU_GATEWAY_TIMEOUTS": json.dumps({"openai": config.model_timeout_s}),
        "YIJU_GATEWAY_MAX_INFLIGHT": str(config.gateway_window),
        # Every sentence its own model conversation: what the model's capacity is measured with.
        "YIJU_GATEWAY_CACHE_TTL_S": "0",
        "YIJU_GATEWAY_SINGLE_FLIGHT": "false",
        "YIJU_SWEEP_AFTER_S": f"{config.sweep_after_s:g}",
        **sampler_env(config.sampler),
        **config.extra_env,
    }


PlatformFactory = Callable[[dict[str, str]], LocalPlatform]


def own_platform(env: dict[str, str]) -> LocalPlatform:
    return LocalPlatform.on_free_ports(Path(tempfile.mkdtemp(prefix="yiju-model-bench-")), extra_env=env)


class ModelBench:
    def __init__(
        self, config: ModelBenchConfig, console: Console, platform_factory: PlatformFactory = own_platform
    ) -> None:
        self.config = config
        self.console = console
        self.sim = SimServer()
        self.platform = platform_factory(platform_env(config, self.sim.url))
        self.kills: list[dict[str, Any]] = []
        # Per run, for the plot (not in the JSON): [completed at s, end-to-end ms, slow 0/1] per order.
        self.series: dict[str, list[list[float]]] = {}
        self.model_ms: dict[str, list[float]] = {}  # per run: the model service time of each order
        self.capacity = config.rules_capacity  # the bound's cap: measured by _capacity

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def sim_run(self, **overrides: Any) -> SimRun:
        return self.config.sim_run(**overrides)

    @property
    def pids(self) -> dict[str, int]:
        pids = dict(self.platform.pids)
        if self.sim.pid is not None:
            pids["model_sim"] = self.sim.pid
        return pids

    async def run(self) -> dict[str, Any]:
        started = time.time()
        plat = self.platform
        try:
            await self.sim.start(self.sim_run())
            await plat.start_infra()
            await plat.start_services()
            await plat.wait_ready(timeout=180)
            self.say(
                f"platform up ({', '.join(f'{n} {p}' for n, p in plat.pids.items())}); "
                f"simulated Qwen on {self.sim.url}"
            )
            results = await self._runs()
        finally:
            await plat.stop_all()
            await self.sim.aclose()
            shutil.rmtree(plat.data_dir, ignore_errors=True)
        results["seconds"] = round(time.time() - started, 1)
        return results

    async def _runs(self) -> dict[str, Any]:
        cfg, plat = self.config, self.platform
        settings = plat.settings()
        catalog = load_catalog(settings.catalog_dir, cfg.users)
        redis = create_redis(url=plat.redis_url)
        runs: dict[str, dict[str, Any]] = {}
        try:
            async with LoadRunner(settings, catalog, load_config_for(plat, cfg.via, cfg.users)) as runner:
                before = await wallet_spent(redis, runner.pool.ids)
                with LiveProgress(self.console) as live:
                    runner.on_tick = live.tick
                    runs["capacity"] = await self._capacity(runner, redis)
                    mean_s = await self._calibrate(runner, redis)
                    if "main" in cfg.runs:
                        bound = littles_bound(cfg.slots, mean_s, self.capacity)
                        rate = cfg.rate or round(cfg.load_fraction * bound, 1)
                        runs["main"] = await self._run(
                            runner, redis, "main", rate, cfg.step_s, self.sim_run()
                        )
                    if "slow" in cfg.runs:
                        slow_mean = mean_s + cfg.slow_share * (
                            cfg.slow_ms / 1000 - lognormal_mean_s(cfg.p50_ms, cfg.p99_ms)
                        )
                        rate = round(
                            cfg.slow_load_fraction * littles_bound(cfg.slots, slow_mean, self.capacity),
                            1,
                        )
                        runs["slow_baseline"] = await self._run(
                            runner, redis, "slow baseline", rate, cfg.step_s, self.sim_run()
                        )
                        runs["slow"] = await self._run(
                            runner,
                            redis,
                            "slow",
                            rate,
                            cfg.step_s,
                            self.sim_run(slow_rate=cfg.slow_share, slow_ms=cfg.slow_ms),
                        )
                    if "orbit" in cfg.runs:
                        link = self.sim_run(
                            p50_ms=cfg.orbit_link_ms, p99_ms=cfg.orbit_link_ms, search_rate=0.0
                        )
                        runs["orbit"] = await self._run(
                            runner,
                            redis,
                            "orbit",
                            cfg.orbit_rate,
                            cfg.orbit_orders / cfg.orbit_rate,
                            link,
                            during=self._kill_mid_calls if cfg.orbit_kills else None,
                        )
                measured = [t for t in runner.tracks() if t.phase > 0]
                final = runner.overall_result(final=True)
                checks = {
                    "lost": final["lost"],
                    "duplicated": final["duplicated"],
                    "failed": final["failed"],
                    "projection": await verify_projection(redis, measured),
                    "money": money_check(before, await wallet_spent(redis, runner.pool.ids), runner.tracks()),
                    "gateway_repeat_claims": sum(r["gateway"]["repeat_claims"] for r in runs.values()),
                    "restarts": dict(plat.restarts),
                    "kills": self.kills,
                }
        finally:
            await redis.aclose()
        return self._results(runs, checks)

    async def _capacity(self, runner: LoadRunner, redis: Redis) -> dict[str, Any]:
        """The platform's own ceiling in model mode: a burst offered at --rules-capacity/s to a model that
        answers in 10 ms, timed until its last order completes (also the warm-up)."""
        cfg = self.config
        rate = cfg.rules_capacity
        run = await self._run(
            runner, redis, "capacity", rate, cfg.capacity_orders / rate, self.sim_run(p50_ms=10, p99_ms=10)
        )
        run["capacity_per_s"] = (
            round(run["completed"] / run["completed_in_s"], 1) if run["completed_in_s"] > 0 else 0.0
        )
        self.capacity = min(cfg.rules_capacity, run["capacity_per_s"] or cfg.rules_capacity)
        self.say(f"platform capacity in model mode: {run['capacity_per_s']:g}/s (the bound's cap)")
        return run

    async def _calibrate(self, runner: LoadRunner, redis: Redis) -> float:
        """The mean model time of a sentence, measured at half the nominal bound (also the warm-up)."""
        cfg = self.config
        nominal = expected_model_s(cfg.p50_ms, cfg.p99_ms, turns=cfg.turns)
        rate = round(0.5 * littles_bound(cfg.slots, nominal, self.capacity), 1)
        calibration = await self._run(runner, redis, "calibration", rate, cfg.calibrate_s, self.sim_run())
        measured = float(calibration["model"]["mean_model_s"]) or nominal
        self.say(f"mean model time per sentence: {measured:.3f} s measured ({nominal:.3f} s nominal)")
        return measured

    async def _run(
        self,
        runner: LoadRunner,
        redis: Redis,
        label: str,
        rate: float,
        seconds: float,
        sim: SimRun,
        during: Callable[[LoadRunner, float], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        cfg = self.config
        await self.sim.start(sim)
        self.say(f"{label}: {rate:g}/s for {seconds:g}s, model {sim.argv()}")
        first = cpu.sample(self.pids)
        sending = asyncio.create_task(runner.run_phase(Constant(rate, seconds), label))
        side = asyncio.create_task(during(runner, seconds)) if during is not None else None
        try:
            phase = await sending
            sent = cpu.sample(self.pids)
            drained = await runner.drain(cfg.deadline_s + cfg.sweep_after_s)
        finally:
            if side is not None:
                side.cancel()
                await asyncio.gather(side, return_exceptions=True)
        tracks = runner.tracks(phase)
        result = runner.phase_result(phase)
        order_ids = [t.order_id for t in tracks if t.order_id]
        orders = await self.sim.orders()
        model = model_orders(orders, order_ids)
        stats = await self.sim.stats()
        completed = [t for t in tracks if t.status == COMPLETED]
        run = {
            "offered_per_s": rate,
            "seconds": seconds,
            "drained": drained,
            "sentences_per_s": sustained_rate(
                [t.done_ms for t in completed],
                (phase.started_ms, phase.ended_ms),
                result["latency_ms"]["p99"],
            ),
            "offered": result["offered"],
            "completed": result["completed"],
            # from the step's start to its last completion (the capacity burst's drain time)
            "completed_in_s": completed_in_s(completed, phase.started_ms),
            "statuses": result["statuses"],
            "lost": result["unsettled"],
            "duplicated": result["duplicated"],
            "failed": result["failed"],
            "latency_ms": result["latency_ms"],
            "accepted_latency_ms": result["pipeline_latency_ms"],
            "model": model,
            "model_calls_per_1000": per_1000(model["requests"], len(completed)),
            "gateway": await gateway_claims(redis, order_ids),
            "sim": {k: stats[k] for k in ("requests", "aborted", "slow", "max_in_flight", "max_queued")},
            "cpu_percent": cpu.usage(first, sent),
        }
        self.series[label] = latency_series(completed, runner.tracker.start_ms, model_slow_ids(orders))
        self.model_ms[label] = sorted(1000 * orders[o]["service_s"] for o in order_ids if o in orders)
        self.say(
            f"  {label}: {run['sentences_per_s']:g}/s sustained of {rate:g}/s offered, e2e p50/p99 "
            f"{run['latency_ms']['p50']:.0f}/{run['latency_ms']['p99']:.0f} ms, model p99 "
            f"{model['model_p99_ms']:.0f} ms, {model['duplicate_model_calls']} repeated model calls, "
            f"statuses {run['statuses']}, lost {run['lost']}, CPU ours {run['cpu_percent']['all ours']:.0f}% "
            f"others {run['cpu_percent']['others']:.0f}%"
        )
        return run

    async def _kill_mid_calls(self, runner: LoadRunner, seconds: float) -> None:
        """SIGKILL planning a third of the way through the run's schedule, the gateway at two thirds (both
        with model calls in flight); the platform's supervisor restarts them."""
        began = time.monotonic()
        for name, share in (("planning", 1 / 3), ("model_gateway", 2 / 3)):
            await asyncio.sleep(max(began + seconds * share - time.monotonic(), 0.0))  # the kill's time
            phase = runner.phases[-1]
            in_flight = (await self.sim.stats())["in_flight"]
            self.platform.kill(name)
            self.kills.append(
                {
                    "process": name,
                    "after_orders": phase.offered,
                    "model_calls_in_flight": in_flight,
                    "at_s": round((time.time() * 1000 - runner.tracker.start_ms) / 1000, 1),
                }
            )
            self.say(f"  kill -9 {name} after {phase.offered} orders, {in_flight} model calls in flight")

    def _results(self, runs: dict[str, dict[str, Any]], checks: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config
        main = runs.get("main")
        results: dict[str, Any] = {
            "benchmark": "model mode (make bench --model sim): sentence in, order COMPLETED, simulated Qwen",
            "sentences_per_s": main["sentences_per_s"] if main else None,
            "bound_sentences_per_s": (
                round(littles_bound(cfg.slots, main["model"]["mean_model_s"], self.capacity), 1)
                if main
                else None
            ),
            "offered_per_s": main["offered_per_s"] if main else None,
            "model_bound_sentences_per_s": (
                round(cfg.slots / main["model"]["mean_model_s"], 1)
                if main and main["model"]["mean_model_s"]
                else None
            ),
            "capacity_sentences_per_s": self.capacity,
            "p50_ms": main["latency_ms"]["p50"] if main else None,
            "p99_ms": main["latency_ms"]["p99"] if main else None,
            "accepted_p99_ms": main["accepted_latency_ms"]["p99"] if main else None,
            "model_p50_ms": main["model"]["model_p50_ms"] if main else None,
            "model_p99_ms": main["model"]["model_p99_ms"] if main else None,
            "model_wall_p99_ms": main["model"]["model_wall_p99_ms"] if main else None,
            "mean_model_s": main["model"]["mean_model_s"] if main else None,
            "lost": checks["lost"],
            "duplicated": checks["duplicated"],
            "duplicate_model_calls": sum(r["model"]["duplicate_model_calls"] for r in runs.values()),
            "model_calls_per_1000": main["model_calls_per_1000"] if main else None,
            "money_ok": checks["money"]["ok"],
            "slow": (
                slow_result(runs["slow_baseline"], runs["slow"], self.series["slow"])
                if "slow" in runs
                else None
            ),
            "orbit": orbit_result(runs["orbit"], self.kills) if "orbit" in runs else None,
        }
        results["targets"] = targets(results)
        results["notes"] = {
            "bound": "bound_sentences_per_s = min(model_bound_sentences_per_s, capacity_sentences_per_s): "
            "slots / mean model time per sentence (its turns' simulated service times, measured per order "
            "in the main run), capped by what the platform completes per second in model mode on this "
            "machine with a 10 ms model (runs.capacity, itself capped by config.rules_capacity)",
            "rate": "sentences_per_s: completions in [step start + e2e p99, step end] per second",
            "latency": "p50_ms/p99_ms: end to end, from the sentence's intended send time to its order's "
            "PaymentCaptured (COMPLETED); accepted_p99_ms from intent accepted; model_p99_ms: the p99 of "
            "an order's model service time (its turns together, no queueing)",
            "calls": "duplicate_model_calls: model conversations beyond the first per order, counted by "
            "the simulated Qwen (X-Yiju-Order-Id), every run; model_calls_per_1000: HTTP requests "
            "(turns) per 1000 completed sentences, main run",
        }
        results.update(
            runs=runs,
            checks=checks,
            config={**config_summary(cfg), "gateway_window": cfg.gateway_window},
            machine=machine_summary(),
        )
        return results


async def gateway_claims(redis: Redis, order_ids: list[str]) -> dict[str, int]:
    """The gateway's own record per order (gateway:parse:{order}): how many orders the model answered,
    how many were answered as lost (claimed by a gateway that died mid-call: not called again), how many
    are claimed and never answered, and repeated claims."""
    answered = lost = unanswered = repeat = 0
    for start in range(0, len(order_ids), 500):
        pipe = redis.pipeline(transaction=False)
        for order_id in order_ids[start : start + 500]:
            pipe.hmget(claim_key(order_id), "state", "calls", "lost_replica")
        for state, calls, lost_replica in await pipe.execute():
            lost += state == "answered" and bool(lost_replica)
            answered += state == "answered" and not lost_replica
            unanswered += state == "claimed"
            repeat += int(calls or 0) > 1
    return {
        "answered": answered,
        "answered_lost": lost,
        "claimed_not_answered": unanswered,
        "repeat_claims": repeat,
    }


def completed_in_s(completed: list[Track], started_ms: float) -> float:
    last = max((t.done_ms for t in completed), default=started_ms)
    return round((last - started_ms) / 1000, 1)


def model_slow_ids(orders: dict[str, dict[str, Any]]) -> set[str]:
    return {order_id for order_id, calls in orders.items() if calls.get("slow")}


def latency_series(completed: list[Track], start_ms: float, slow_ids: set[str]) -> list[list[float]]:
    """[seconds since the bench began when it completed, end-to-end ms, 1 if slow] per order."""
    return [
        [
            round((t.done_ms - start_ms) / 1000, 2),
            round(t.done_ms - t.intended_ms, 1),
            int(t.order_id in slow_ids),
        ]
        for t in completed
    ]


def slow_result(baseline: dict[str, Any], slow: dict[str, Any], series: list[list[float]]) -> dict[str, Any]:
    others = [ms for _, ms, is_slow in series if not is_slow]
    others_p99 = summarize(others)["p99"]
    return {
        "offered_per_s": slow["offered_per_s"],
        "slow_orders": slow["model"]["slow_orders"],
        "orders": slow["offered"],
        "baseline_p99_ms": baseline["latency_ms"]["p99"],
        "others_p99_ms": others_p99,
        "comparison": slow_comparison(baseline["latency_ms"]["p99"], others_p99),
    }


def orbit_result(orbit: dict[str, Any], kills: list[dict[str, Any]]) -> dict[str, Any]:
    verdict = orbit_verdict(orbit["statuses"], orbit["lost"], orbit["model"]["duplicate_model_calls"])
    gateway = orbit["gateway"]
    return {
        **verdict,
        "orders": orbit["offered"],
        # Completed without the model's answer, by the rules fallback: at once when the restarted gateway
        # found the call lost with the killed one (answered as lost), else at the deadline.
        "completed_by_lost_call_fallback": gateway["answered_lost"],
        "completed_by_deadline_fallback": max(
            verdict["completed"] - gateway["answered"] - gateway["answered_lost"], 0
        ),
        "repeat_claims": gateway["repeat_claims"],
        "kills": kills,
        "p99_ms": orbit["latency_ms"]["p99"],
    }


def parse_args(argv: list[str] | None = None) -> ModelBenchConfig:
    parser = argparse.ArgumentParser(
        prog="python -m yiju_infra.bench.model_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", choices=("sim",), default="sim", help="the model (the bench's dispatch)")
    parser.add_argument("--quick", action="store_true", help="short steps, short model times (smoke run)")
    parser.add_argument("--model-p50-ms", type=float, help="per turn (default 1200)")
    parser.add_argument("--model-p99-ms", type=float, help="per turn (default 6000)")
    parser.add_argument("--model-slots", type=int, help="requests served at once (default 256)")
    parser.add_argument(
        "--max-inflight", type=int, help="the gateway's window (default: the slots and a quarter more)"
    )
    parser.add_argument("--search-rate", type=float, help="share of sentences that search first (default 1)")
    parser.add_argument("--step-s", type=float, help="seconds per run (default 60)")
    parser.add_argument("--calibrate-s", type=float)
    parser.add_argument("--rate", type=float, help="the main run's offered rate (default: from the bound)")
    parser.add_argument("--load-fraction", type=float, help="main run: share of the bound (default 0.93)")
    parser.add_argument("--rules-capacity", type=float, help="the bound's cap, sentences/s (default 250)")
    parser.add_argument("--capacity-orders", type=int, help="the capacity burst (default 1500; --quick 200)")
    parser.add_argument("--slow-share", type=float)
    parser.add_argument("--slow-ms", type=float)
    parser.add_argument("--orbit-link-ms", type=float)
    parser.add_argument("--orbit-orders", type=int)
    parser.add_argument("--orbit-rate", type=float)
    parser.add_argument("--no-kills", action="store_true", help="the orbit run without kill -9")
    parser.add_argument("--deadline-s", type=float, help="YIJU_PLANNING_MODEL_DEADLINE_S (default 180)")
    parser.add_argument("--runs", help="comma-separated: main,slow,orbit (default all)")
    parser.add_argument("--users", type=int)
    parser.add_argument(
        "--sampler",
        choices=sorted(SAMPLERS),
        help="traces: production (the chart's 5 %%, the default) or full (every sentence)",
    )
    parser.add_argument("--env", action="append", default=[], metavar="K=V", help="extra service environment")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "model.json")
    parser.add_argument("--png", type=Path, default=REPO_ROOT / "bench" / "model.png")
    args = parser.parse_args(argv)
    config = ModelBenchConfig(out=args.out, png=args.png)
    if args.quick:
        config.step_s, config.calibrate_s, config.slow_ms = 15.0, 8.0, 6_000.0
        config.orbit_link_ms, config.orbit_orders, config.orbit_rate = 10_000.0, 30, 3.0
        config.deadline_s, config.sweep_after_s, config.capacity_orders = 30.0, 60.0, 200
    for name, attr in (
        ("model_p50_ms", "p50_ms"),
        ("model_p99_ms", "p99_ms"),
        ("model_slots", "slots"),
        ("max_inflight", "max_inflight"),
        ("search_rate", "search_rate"),
        ("step_s", "step_s"),
        ("calibrate_s", "calibrate_s"),
        ("rate", "rate"),
        ("load_fraction", "load_fraction"),
        ("rules_capacity", "rules_capacity"),
        ("capacity_orders", "capacity_orders"),
        ("slow_share", "slow_share"),
        ("slow_ms", "slow_ms"),
        ("orbit_link_ms", "orbit_link_ms"),
        ("orbit_orders", "orbit_orders"),
        ("orbit_rate", "orbit_rate"),
        ("deadline_s", "deadline_s"),
        ("users", "users"),
        ("sampler", "sampler"),
    ):
        value = getattr(args, name)
        if value is not None:
            setattr(config, attr, value)
    config.orbit_kills = not args.no_kills
    if args.runs:
        config.runs = tuple(r.strip() for r in args.runs.split(",") if r.strip())
        unknown = set(config.runs) - {"main", "slow", "orbit"}
        if unknown:
            parser.error(f"unknown runs: {', '.join(sorted(unknown))}")
    for item in args.env:
        key, _, value = item.partition("=")
        config.extra_env[key.strip()] = value
    return config


async def run_bench(
    config: ModelBenchConfig, console: Console, platform_factory: PlatformFactory = own_platform
) -> dict[str, Any]:
    """Runs the bench and writes its JSON and PNG; returns the results."""
    bench = ModelBench(config, console, platform_factory)
    results = await bench.run()
    config.out.parent.mkdir(parents=True, exist_ok=True)
    config.out.write_text(json.dumps(results, ensure_ascii=False, indent=2))
    title = (
        f"yiju model mode, {results['machine']['cpus']} cores: simulated Qwen p50 {config.p50_ms:g} ms, "
        f"p99 {config.p99_ms:g} ms per turn, {config.slots} slots"
    )
    drawn = model_png(results, bench.series, bench.model_ms, config.png, title)
    console.print_json(json.dumps({k: results[k] for k in HEADLINE}))
    console.print(f"wrote {config.out}" + (f" and {config.png}" if drawn else " (no matplotlib: no plot)"))
    return results


async def main(argv: list[str] | None = None) -> int:
    await run_bench(parse_args(argv), bench_console())
    return 0


if __name__ == "__main__":
    sys.exit(uvloop.run(main()))
