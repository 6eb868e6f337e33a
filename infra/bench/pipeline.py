"""Benchmark of the whole pipeline, sentence in to order COMPLETED: `make bench`.

Needs nothing but itself: starts its own LocalPlatform (the broker, Apache Kafka by default, Redis,
the five services, rules backend) on free ports in a temporary data dir, with YIJU_SYNTHETIC_USERS
synthetic users, then

1. the raw broker: aiokafka produce+consume of records shaped like the pipeline's events
   (yiju_infra.bench.rawbroker), on the same machine and broker;
2. the pipeline: an open-loop load (yiju.loadgen) at rising rates, each held for --step-s seconds,
   until p99 passes --p99-limit-ms or anything is lost, duplicated or fails. Each step: sentences/s
   completed, latency percentiles (from the intended send time, and from intent accepted) to
   COMPLETED, CPU of every process (from /proc) and of whatever else ran on the machine;
3. capacity: a burst of --burst sentences offered within a few seconds, and the rate at which the
   pipeline completes the backlog, until the projection shows every order COMPLETED (no latency
   bound: the ceiling of its throughput, and its CPU cost per sentence when every batch is full);
4. the tracing sampler's cost: one more step at --sampling-rate with every trace recorded and one with
   the production sampler (the chart's parent-based ratio, --sample-ratio), the services restarted
   between them; `cpu_ms_per_sentence` (the platform's processes only: broker, Redis and the services,
   without the load generator) and p99 of each go to `sampling`, and the production one is the
   top-level `cpu_ms_per_sentence`;
5. checks at the end: nothing lost or duplicated after a final drain, every completed order reads
   COMPLETED in the projection, and the wallets were charged exactly what was captured.

`--kafka-client` picks the services' Kafka client (YIJU_KAFKA_CLIENT: aiokafka, confluent) for the
steps above; `both` (the default) runs them on aiokafka and then, on the same platform, compares the
clients side by side: for each, the services restarted on it (production sampler), a steady step at
--client-rate and a capacity burst of --client-burst. `by_client` holds each client's figures
(cpu_ms_per_sentence, completed/s and p99 at the steady step, capacity); with one client named, the
headline figures of the run under that client's name.

Every step and the capacity burst run on one platform: Apache Kafka finds a fetch offset through its
index, so a step does not inherit a broker cost from the log the steps before it left (`make soak`
checks exactly that over 30 minutes). `--fresh-platform-per-step` starts a fresh, warmed-up platform
for each step and for the burst instead. That was the default on tansu, whose memory storage does work
proportional to a topic's length on every produce and fetch (measured: at a constant 100/s, tansu went
from 51 % to 80 % of a core in four minutes and p99 from 280 to 630 ms); with YIJU_BROKER=tansu use it.

Writes bench/results.json and bench/latency.png. `--quick` runs short steps (a smoke run, not a
measurement). The machine is shared: the "others" CPU column says how much was not ours.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop
from rich.console import Console
from rich.table import Table

from yiju.common.catalog import load_catalog
from yiju.common.redis import create_redis
from yiju.common.settings import REPO_ROOT
from yiju.loadgen.checks import money_check, verify_projection, wallet_spent
from yiju.loadgen.profiles import Constant
from yiju.loadgen.report import LiveProgress, phase_table
from yiju.loadgen.runner import LoadRunner
from yiju_infra.bench import cpu
from yiju_infra.bench.broker_info import broker_in_use
from yiju_infra.bench.console import bench_console
from yiju_infra.bench.platform_load import load_config_for
from yiju_infra.bench.plot import latency_png
from yiju_infra.bench.rawbroker import measure as measure_broker
from yiju_infra.bench.run_info import config_summary, machine_summary
from yiju_infra.bench.samplers import FULL_SAMPLER, PRODUCTION_SAMPLE_RATIO, PRODUCTION_SAMPLER
from yiju_infra.local.platform import SERVICES, LocalPlatform

FULL_RATES = (50, 100, 150, 200, 300, 400, 600, 800, 1200, 1600, 2000, 2500, 3000)
EVENTS_PER_SENTENCE = 6  # published: submitted, accepted, plan created, authorized, fulfilled, captured
CONSUMED_PER_SENTENCE = 10  # intake 1, projection 5, planning 1, payment 2, fulfilment 1
HEADLINE = (
    "sentences_per_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "e2e_p99_ms",
    "lost",
    "duplicated",
    "broker_events_per_s",
    "pipeline_events_per_s",
    "broker_ratio",
    "ceiling",
    "capacity_sentences_per_s",
    "cpu_ms_per_sentence",
)
# The services' Kafka clients (yiju.common.kafka_client): faststream's aiokafka and confluent brokers.
KAFKA_CLIENTS = ("aiokafka", "confluent")
BOTH_CLIENTS = "both"


@dataclass
class BenchConfig:
    rates: tuple[float, ...] = FULL_RATES
    step_s: float = 60.0
    warmup_s: float = 10.0
    warmup_rate: float = 50.0
    drain_s: float = 30.0
    final_drain_s: float = 120.0
    via: str = "kafka"
    users: int = 10_000
    p99_limit_ms: float = 500.0
    latency_basis: str = "accepted"  # accepted | intended: which p99 the limit applies to
    raw_records: int = 200_000
    burst: int = 10_000
    keep_going: bool = False
    # Each rate step (and the capacity burst) on a platform of its own, started afresh. Off by default:
    # Kafka's cost does not grow with the log. On tansu (YIJU_BROKER=tansu) it does (docs/performance.md).
    fresh_per_step: bool = False
    replicas: dict[str, int] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    # The sampler comparison: a steady step at this rate with every trace, then with the production
    # sampler at this ratio (0: no comparison; cpu_ms_per_sentence then comes from the sustained step).
    sampling_rate: float = 200.0
    sample_ratio: float = PRODUCTION_SAMPLE_RATIO
    kafka_client: str = "aiokafka"
    # The side-by-side client comparison: a steady step at client_rate and a burst of client_burst on each
    # of these clients (empty: none; by_client then carries the run's headline under kafka_client).
    compare_clients: tuple[str, ...] = ()
    client_rate: float = 200.0
    client_burst: int = 3000
    out: Path = REPO_ROOT / "bench" / "results.json"
    png: Path = REPO_ROOT / "bench" / "latency.png"


def step_verdict(step: dict[str, Any], limit_ms: float, basis: str = "accepted") -> str:
    """Empty when the step was sustained cleanly, else why not. `basis`: the p99 that must stay under the
    limit, from intent "accepted" (the default, as issue #5 defines it) or from the "intended" send time."""
    problems = []
    p99 = step["pipeline_latency_ms" if basis == "accepted" else "latency_ms"]["p99"]
    if p99 > limit_ms:
        problems.append(f"p99 ({basis} -> COMPLETED) {p99:.0f} ms > {limit_ms:g} ms")
    if step["unsettled"] or step["lost"]:
        problems.append(f"{step['unsettled'] or step['lost']} not settled after the drain")
    if step["failed"]:
        problems.append(f"{step['failed']} failed ({step['send_errors']})")
    if step["duplicated"]:
        problems.append(f"{step['duplicated']} duplicated")
    other = {k: v for k, v in step["statuses"].items() if k != "COMPLETED"}
    if other:
        problems.append(f"not completed: {other}")
    if step.get("projection_behind"):
        problems.append(f"projection still behind on {step['projection_behind']} completed orders")
    if step["completed_per_s"] < 0.95 * step["offered_per_s"]:
        problems.append(f"completed {step['completed_per_s']:.0f}/s of {step['offered_per_s']:.0f}/s offered")
    return "; ".join(problems)


def _steady_step_fields(step: dict[str, Any]) -> dict[str, Any]:
    """What `sampling.<label>` and `by_client.<client>` both report of a steady step."""
    return {
        "offered_per_s": step["offered_per_s"],
        "p50_ms": step["pipeline_latency_ms"]["p50"],
        "p99_ms": step["pipeline_latency_ms"]["p99"],
        "cpu_ms_per_sentence": step["platform_cpu_ms_per_sentence"],
        "cpu_ms_per_sentence_by_process": step["cpu_ms_per_sentence_by_process"],
        "cpu_percent_others": step["cpu_percent"].get("others"),
        "verdict": step["verdict"],
    }


def sampling_summary(step: dict[str, Any], sampler: str, ratio: float) -> dict[str, Any]:
    """One sampler's steady step, as `sampling.<label>` reports it."""
    return {
        "sampler": sampler,
        "ratio": ratio,
        "completed_per_s": step["completed_per_s"],
        **_steady_step_fields(step),
    }


def client_summary(step: dict[str, Any], burst: dict[str, Any] | None) -> dict[str, Any]:
    """One client's steady step and burst, as `by_client.<client>` reports it."""
    return {
        "sentences_per_s": step["completed_per_s"],
        "capacity_sentences_per_s": burst["sentences_per_s"] if burst else None,
        "capacity_cpu_ms_per_sentence": burst["platform_cpu_ms_per_sentence"] if burst else None,
        **_steady_step_fields(step),
    }


def headline_cpu(sampling: dict[str, Any] | None, best: dict[str, Any] | None) -> tuple[float | None, str]:
    """The top-level cpu_ms_per_sentence and what it was measured on: the production sampler's steady step
    when the comparison ran, else the sustained step (every trace recorded), else none."""
    if sampling and "production" in sampling:
        production = sampling["production"]
        return production["cpu_ms_per_sentence"], (
            f"production sampler ({production['sampler']} {production['ratio']:g}) at "
            f"{production['offered_per_s']:g}/s offered"
        )
    if best is not None:
        return best.get("platform_cpu_ms_per_sentence"), (
            f"the sustained step ({best['offered_per_s']:g}/s offered), every trace recorded"
        )
    return None, "no step was sustained"


def cpu_table(steps: list[dict[str, Any]]) -> Table:
    names: list[str] = []
    for s in steps:
        names += [n for n in s["cpu_percent"] if n not in names]
    table = Table(title="CPU during each step (% of one core; 200 = both cores)", title_justify="left")
    table.add_column("offered/s", justify="right")
    for n in names:
        table.add_column(n, justify="right")
    table.add_column("ms CPU/sentence", justify="right")
    for s in steps:
        table.add_row(
            f"{s['offered_per_s']:.0f}",
            *(f"{s['cpu_percent'].get(n, 0):.0f}" for n in names),
            f"{s['cpu_ms_per_sentence']:.2f}",
        )
    return table


def merge_checks(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The end-of-run checks of several platforms as one: counts add up, verdicts must all hold."""
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            merged[key] = _merge(merged.get(key), value, key)
    return merged


def _merge(a: Any, b: Any, key: str) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) and bool(b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return max(a, b) if key == "users" else a + b
    if isinstance(a, list) and isinstance(b, list):
        return (a + b)[:5]
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _merge(a.get(k), b.get(k), k) for k in {**a, **b}}
    return b


class PipelineBench:
    by_client: dict[str, Any] | None = None  # filled by the client comparison (see _compare_clients)

    def __init__(self, config: BenchConfig, console: Console) -> None:
        self.config = config
        self.console = console
        self.platform = self._new_platform()
        # Filled by the sampler comparison (see _compare_samplers): {"full": ..., "production": ...}.
        self.sampling: dict[str, Any] | None = None
        self.by_client = None

    def _new_platform(self) -> LocalPlatform:
        config = self.config
        env = {
            "YIJU_SYNTHETIC_USERS": str(config.users),
            "YIJU_GATEWAY_BACKENDS": "rules",
            "YIJU_KAFKA_CLIENT": config.kafka_client,
            **config.extra_env,
        }
        kwargs: dict[str, Any] = {"extra_env": env}
        if config.replicas:
            kwargs["replicas"] = config.replicas
        return LocalPlatform.on_free_ports(Path(tempfile.mkdtemp(prefix="yiju-bench-")), **kwargs)

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)

    async def run(self) -> dict[str, Any]:
        cfg = self.config
        started = time.time()
        plat = self.platform
        try:
            await plat.start_infra()
            in_use = broker_in_use(plat)
            self.say(
                f"broker {in_use['description']} at {plat.bootstrap}, Redis {plat.redis_url}, "
                f"data {plat.data_dir}"
            )
            self.say(f"raw broker: {cfg.raw_records} records of the pipeline's event sizes ...")
            broker = (await measure_broker(plat.bootstrap, cfg.raw_records)).as_dict()
            self.say(
                f"  produce {broker['produce_per_s']:.0f}/s, consume {broker['consume_per_s']:.0f}/s, "
                f"produce+consume {broker['produce_consume_per_s']:.0f}/s "
                f"({broker['record_bytes_avg']:.0f} B a record)"
            )
            if not cfg.fresh_per_step:
                await self._start_services()
                steps, checks = await self._load(
                    cfg.rates, capacity=cfg.burst > 0 or cfg.sampling_rate > 0 or bool(cfg.compare_clients)
                )
        finally:
            await self._discard_platform()
        if cfg.fresh_per_step:
            steps, parts = [], []
            for rate in cfg.rates:
                more, part = await self._on_fresh_platform((rate,), capacity=False)
                steps += more
                parts.append(part)
                if more and more[-1]["verdict"] and not cfg.keep_going:
                    break
            if cfg.burst > 0 or cfg.sampling_rate > 0 or cfg.compare_clients:
                parts.append((await self._on_fresh_platform((), capacity=True))[1])
            checks = merge_checks(parts)
        self.console.print(phase_table(steps, "pipeline steps"), width=max(self.console.width, 150))
        self.console.print(cpu_table(steps), width=max(self.console.width, 150))
        return self._results({**in_use, **broker}, steps, checks, time.time() - started)

    async def _start_services(self) -> None:
        plat = self.platform
        await plat.start_services()
        await plat.wait_ready(timeout=180)
        self.say(f"services ready: {', '.join(f'{n} pid {p}' for n, p in plat.pids.items())}")

    async def _discard_platform(self) -> None:
        await self.platform.stop_all()
        shutil.rmtree(self.platform.data_dir, ignore_errors=True)

    async def _on_fresh_platform(
        self, rates: tuple[float, ...], capacity: bool
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Starts a new platform (broker, Redis, services), runs the rates and/or the burst on it after
        its own warm-up, checks what it did, and stops it."""
        self.platform = self._new_platform()
        try:
            await self.platform.start_infra()
            await self._start_services()
            return await self._load(rates, capacity)
        finally:
            await self._discard_platform()

    async def _load(
        self, rates: tuple[float, ...], capacity: bool
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        cfg, plat = self.config, self.platform
        settings = plat.settings()
        catalog = load_catalog(settings.catalog_dir, cfg.users)
        load_config = load_config_for(plat, cfg.via, cfg.users)
        steps: list[dict[str, Any]] = []
        redis = create_redis(url=plat.redis_url)
        try:
            async with LoadRunner(settings, catalog, load_config) as runner:
                before = await wallet_spent(redis, runner.pool.ids)
                with LiveProgress(self.console) as live:
                    runner.on_tick = live.tick
                    if cfg.warmup_s > 0:
                        await runner.run_phase(Constant(cfg.warmup_rate, cfg.warmup_s), "warm-up")
                        await runner.drain(cfg.drain_s)
                    for rate in rates:
                        step = await self._step(runner, rate, redis)
                        steps.append(step)
                        accepted, intended = step["pipeline_latency_ms"], step["latency_ms"]
                        self.say(
                            f"  {rate:g}/s: completed {step['completed_per_s']:.0f}/s, p50/p95/p99 "
                            f"{accepted['p50']:.0f}/{accepted['p95']:.0f}/{accepted['p99']:.0f} ms from "
                            f"accepted ({intended['p99']:.0f} ms p99 from intended send), "
                            f"CPU ours {step['cpu_percent']['all ours']:.0f}% "
                            f"others {step['cpu_percent']['others']:.0f}%"
                            + (f"  -> {step['verdict']}" if step["verdict"] else "")
                        )
                        if step["verdict"] and not cfg.keep_going:
                            break
                    self.say(f"final drain (up to {cfg.final_drain_s:g}s) ...")
                    await runner.drain(cfg.final_drain_s)
                    burst = await self._capacity(runner, redis) if capacity and cfg.burst > 0 else None
                    if capacity and cfg.sampling_rate > 0:
                        self.sampling = await self._compare_samplers(runner, redis)
                    if capacity and cfg.compare_clients:
                        self.by_client = await self._compare_clients(runner, redis)
                measured = [t for t in runner.tracks() if t.phase > 0 or cfg.warmup_s <= 0]
                final = runner.overall_result(final=True)
                checks = {
                    "lost": final["lost"],
                    "duplicated": final["duplicated"],
                    "failed": final["failed"],
                    "redelivered_terminal_events": runner.tracker.counters.redelivered,
                    "duplicate_examples": runner.tracker.counters.examples,
                    "projection": await verify_projection(redis, measured),
                    "money": money_check(before, await wallet_spent(redis, runner.pool.ids), runner.tracks()),
                    "restarts": dict(self.platform.restarts),
                    "capacity": burst,
                }
        finally:
            await redis.aclose()
        return steps, checks

    async def _compare_samplers(self, runner: LoadRunner, redis: Any) -> dict[str, Any]:
        """One steady step at `sampling_rate` with every trace recorded, then the services restarted with
        the production sampler and the same step again: CPU per sentence (platform only) and p99 of each."""
        cfg = self.config
        out: dict[str, Any] = {}
        for label, (sampler, ratio) in (
            ("full", FULL_SAMPLER),
            ("production", (PRODUCTION_SAMPLER, cfg.sample_ratio)),
        ):
            await self._use_sampler(sampler, ratio)
            await runner.run_phase(Constant(cfg.warmup_rate, max(cfg.warmup_s, 5.0)), f"warm-up {label}")
            await runner.drain(cfg.drain_s)
            step = await self._step(runner, cfg.sampling_rate, redis)
            out[label] = sampling_summary(step, sampler, ratio)
            self.say(
                f"  sampler {sampler} ({ratio:g}) at {cfg.sampling_rate:g}/s: "
                f"{out[label]['cpu_ms_per_sentence']:.2f} ms CPU/sentence (platform), "
                f"p99 {out[label]['p99_ms']:.0f} ms" + (f"  -> {step['verdict']}" if step["verdict"] else "")
            )
        return out

    async def _compare_clients(self, runner: LoadRunner, redis: Any) -> dict[str, Any]:
        """For each client: the services restarted on it (with the production sampler), a warm-up, a steady
        step at `client_rate` and a burst of `client_burst`, on the same platform, one after the other."""
        cfg = self.config
        out: dict[str, Any] = {}
        for client in cfg.compare_clients:
            await self._use_env(
                {
                    "YIJU_KAFKA_CLIENT": client,
                    "YIJU_TRACE_SAMPLER": PRODUCTION_SAMPLER,
                    "YIJU_TRACE_SAMPLE_RATIO": f"{cfg.sample_ratio:g}",
                }
            )
            await runner.run_phase(Constant(cfg.warmup_rate, max(cfg.warmup_s, 5.0)), f"warm-up {client}")
            await runner.drain(cfg.drain_s)
            step = await self._step(runner, cfg.client_rate, redis)
            burst = await self._capacity(runner, redis, cfg.client_burst) if cfg.client_burst > 0 else None
            out[client] = client_summary(step, burst)
            got = out[client]
            self.say(
                f"  {client} at {cfg.client_rate:g}/s: {got['cpu_ms_per_sentence']:.2f} ms CPU/sentence "
                f"(platform), completed {got['sentences_per_s']:.0f}/s, p99 {got['p99_ms']:.0f} ms"
                + (f", capacity {burst['sentences_per_s']:.0f}/s" if burst else "")
                + (f"  -> {step['verdict']}" if step["verdict"] else "")
            )
        return out

    async def _use_sampler(self, sampler: str, ratio: float) -> None:
        """Restarts every service with this head sampler (YIJU_TRACE_SAMPLER / _SAMPLE_RATIO), unless it
        already runs it."""
        await self._use_env({"YIJU_TRACE_SAMPLER": sampler, "YIJU_TRACE_SAMPLE_RATIO": f"{ratio:g}"})

    async def _use_env(self, wanted: dict[str, str]) -> None:
        """Restarts every service with these settings, unless it already runs them."""
        plat = self.platform
        if all(plat.extra_env.get(k) == v for k, v in wanted.items()):
            return
        plat.extra_env.update(wanted)
        for service in SERVICES:
            for name in plat.instances(service):
                await plat.restart(name, timeout=180)

    async def _capacity(self, runner: LoadRunner, redis: Any, size: int | None = None) -> dict[str, Any]:
        """Offers `size` (default --burst) sentences within ~5 s and times how fast the pipeline completes
        the backlog."""
        cfg = self.config
        size = cfg.burst if size is None else size
        pids = self.platform.pids
        rate = max(size / 5.0, 1.0)
        self.say(f"capacity: {size} sentences offered at {rate:.0f}/s, then drained ...")
        first = cpu.sample(pids)
        phase = await runner.run_phase(Constant(rate, size / rate), "capacity burst")
        await runner.drain(cfg.final_drain_s + size / 50)
        projection = await verify_projection(redis, runner.tracks(phase), wait_s=cfg.final_drain_s)
        projected_ms = time.time() * 1000  # the projection reads COMPLETED for all of them (±0.5 s)
        done = cpu.sample(pids)
        result = runner.phase_result(phase, final=True)
        finished = [t.done_ms for t in runner.tracks(phase) if t.status == "COMPLETED"]
        seconds = (max(finished) - phase.started_ms) / 1000 if finished else 0.0
        projected_s = (projected_ms - phase.started_ms) / 1000 if finished else 0.0
        used = cpu.usage(first, done)
        wall = done.at - first.at
        finished_n = max(len(finished), 1)
        capacity = {
            "offered": result["offered"],
            "completed": result["completed"],
            "lost": result["lost"],
            "duplicated": result["duplicated"],
            # Payment captured for the last order (the saga's end) ...
            "seconds_to_complete": round(seconds, 1),
            "captured_per_s": round(len(finished) / seconds, 1) if seconds else 0.0,
            # ... and the projection showing every order COMPLETED (what users see): the ceiling.
            "seconds_to_project": round(projected_s, 1),
            "sentences_per_s": round(len(finished) / projected_s, 1) if projected_s else 0.0,
            "projection_behind": projection["mismatched"],
            "cpu_percent": used,
            "cpu_ms_per_sentence": round(used["all ours"] / 100 * wall * 1000 / finished_n, 3),
            "platform_cpu_ms_per_sentence": cpu.platform_ms_per_sentence(used, wall, finished_n),
        }
        self.say(
            f"  capacity: {capacity['completed']}/{capacity['offered']} captured in "
            f"{capacity['seconds_to_complete']:.0f}s ({capacity['captured_per_s']:.0f}/s), all COMPLETED "
            f"in the projection in {capacity['seconds_to_project']:.0f}s = "
            f"{capacity['sentences_per_s']:.0f}/s, "
            f"{capacity['cpu_ms_per_sentence']:.1f} ms CPU/sentence, others {used['others']:.0f}%"
        )
        return capacity

    async def _step(self, runner: LoadRunner, rate: float, redis: Any) -> dict[str, Any]:
        pids = self.platform.pids
        first = cpu.sample(pids)
        phase = await runner.run_phase(Constant(rate, self.config.step_s), f"{rate:g}/s")
        sent = cpu.sample(pids)
        drained = await runner.drain(self.config.drain_s)
        # COMPLETED as users see it: the order projection must have caught up with the captured events.
        projection = await verify_projection(redis, runner.tracks(phase), wait_s=self.config.drain_s)
        done = cpu.sample(pids)
        step = runner.phase_result(phase)
        step["drained"] = drained
        step["projection_behind"] = projection["mismatched"]
        step["cpu_percent"] = cpu.usage(first, sent)
        used = cpu.usage(first, done)
        seconds = done.at - first.at
        step["cpu_ms_per_sentence"] = round(
            used["all ours"] / 100 * seconds * 1000 / max(step["completed"], 1), 3
        )
        step["cpu_ms_per_sentence_by_process"] = cpu.ms_per_sentence_by_process(
            used, seconds, step["completed"]
        )
        # The platform's processes only (broker, Redis, the services), without the load generator.
        step["platform_cpu_ms_per_sentence"] = cpu.platform_ms_per_sentence(used, seconds, step["completed"])
        step["verdict"] = step_verdict(step, self.config.p99_limit_ms, self.config.latency_basis)
        return step

    def _results(
        self, broker: dict[str, Any], steps: list[dict[str, Any]], checks: dict[str, Any], seconds: float
    ) -> dict[str, Any]:
        cfg = self.config
        good = [s for s in steps if not s["verdict"]]
        best = max(good, key=lambda s: s["completed_per_s"]) if good else None
        ceiling = next((s for s in steps if s["verdict"]), None)
        sentences = best["completed_per_s"] if best else 0.0
        pipeline_events = sentences * EVENTS_PER_SENTENCE
        broker_events = broker["produce_consume_per_s"]
        cpu_ms, cpu_basis = headline_cpu(self.sampling, best)
        headline = {
            "sentences_per_s": sentences,
            "p99_ms": best["pipeline_latency_ms"]["p99"] if best else None,
            "capacity_sentences_per_s": (checks.get("capacity") or {}).get("sentences_per_s"),
            "broker_ratio": round(pipeline_events / broker_events, 4) if broker_events else None,
            "cpu_ms_per_sentence": cpu_ms,
            "sampling": self.sampling,
        }
        return {
            "benchmark": "pipeline (make bench): sentence in, order COMPLETED",
            "sentences_per_s": sentences,
            "p50_ms": best["pipeline_latency_ms"]["p50"] if best else None,
            "p95_ms": best["pipeline_latency_ms"]["p95"] if best else None,
            "p99_ms": best["pipeline_latency_ms"]["p99"] if best else None,
            "e2e_p50_ms": best["latency_ms"]["p50"] if best else None,
            "e2e_p95_ms": best["latency_ms"]["p95"] if best else None,
            "e2e_p99_ms": best["latency_ms"]["p99"] if best else None,
            "lost": checks["lost"],
            "duplicated": checks["duplicated"],
            "broker_events_per_s": broker_events,
            "pipeline_events_per_s": round(pipeline_events, 1),
            "broker_ratio": round(pipeline_events / broker_events, 4) if broker_events else None,
            "ceiling": (
                {"offered_per_s": ceiling["offered_per_s"], "why": ceiling["verdict"]} if ceiling else None
            ),
            "capacity_sentences_per_s": (checks.get("capacity") or {}).get("sentences_per_s"),
            # The platform's processes only (broker, Redis, the five services), not the load generator.
            "cpu_ms_per_sentence": cpu_ms,
            "cpu_ms_per_sentence_basis": cpu_basis,
            "sampling": self.sampling,
            "kafka_client": cfg.kafka_client,
            # Each client's figures side by side (the client comparison), else this run's under its client.
            "by_client": self.by_client or {cfg.kafka_client: headline},
            "notes": {
                "latency": "p50/p95/p99_ms: from intent accepted (IntentAccepted.accepted_at_ms) to the "
                "PaymentCaptured event (the order's COMPLETED); e2e_*: from the sentence's intended send "
                "time (open loop, no coordinated omission)",
                "events": f"pipeline_events_per_s = sentences/s x {EVENTS_PER_SENTENCE} events published per "
                f"sentence (each consumed by 1-2 groups: {CONSUMED_PER_SENTENCE} consumes); "
                "broker_events_per_s = raw aiokafka produce+consume of the same records",
                "capacity": "capacity_sentences_per_s: a burst offered within 5 s, divided by the time until "
                "the projection reads COMPLETED for every order of it (checks.capacity.captured_per_s: "
                "until the last PaymentCaptured)",
                "cpu": "cpu_percent: % of one core during the step (200 = the whole 2-core machine); "
                "others = machine busy minus our processes (other engineers' work)",
                "cpu_ms_per_sentence": "CPU of the platform's processes (broker, Redis, the five services; "
                "not the load generator) over a steady step and its drain, per completed sentence: with the "
                "production sampler at sampling.production.offered_per_s when the sampler comparison ran "
                "(sampling.full: the same step with every trace), else the sustained step's",
            },
            # kind and description of the broker in use, and the raw produce/consume measurement on it
            "broker": broker,
            "fresh_platform_per_step": cfg.fresh_per_step,
            "steps": steps,
            "checks": checks,
            "config": config_summary(cfg),
            "machine": machine_summary(),
            "seconds": round(seconds, 1),
        }


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(
        prog="python -m yiju_infra.bench.pipeline", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--model",
        choices=("rules", "sim"),
        default="rules",
        help="sim: the benchmark with the simulated Qwen (yiju_infra.bench.model_bench, its own options)",
    )
    parser.add_argument("--quick", action="store_true", help="short steps and fewer raw records (smoke run)")
    parser.add_argument("--rates", help="comma-separated offered rates (default 100,200,400,...,3000)")
    parser.add_argument("--step-s", type=float, help="seconds per step (default 60; --quick 10)")
    parser.add_argument("--drain-s", type=float, help="seconds to wait for a step's stragglers (default 30)")
    parser.add_argument("--via", choices=("kafka", "http", "grpc"), default="kafka")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--p99-limit-ms", type=float, default=500.0)
    parser.add_argument(
        "--latency-from",
        choices=("accepted", "intended"),
        default="accepted",
        help="the p99 held to the limit: from intent accepted (default) or from the intended send time",
    )
    parser.add_argument(
        "--raw-records", type=int, help="raw broker test size (default 200000; --quick 50000)"
    )
    parser.add_argument("--keep-going", action="store_true", help="run every rate even after one fails")
    parser.add_argument(
        "--fresh-platform-per-step",
        action="store_true",
        help="a fresh platform for every step and for the burst (default: one platform for all; use it "
        "with YIJU_BROKER=tansu, which slows down as its topics grow)",
    )
    parser.add_argument("--burst", type=int, help="sentences in the capacity burst (default 10000; 0: none)")
    parser.add_argument(
        "--sampling-rate",
        type=float,
        help="offered rate of the sampler comparison's two steady steps (default 200; --quick 100; 0: skip)",
    )
    parser.add_argument(
        "--sample-ratio",
        type=float,
        default=PRODUCTION_SAMPLE_RATIO,
        help=f"the production sampler's ratio ({PRODUCTION_SAMPLER}; default {PRODUCTION_SAMPLE_RATIO:g}, "
        "the chart's)",
    )
    parser.add_argument(
        "--kafka-client",
        choices=(*KAFKA_CLIENTS, BOTH_CLIENTS),
        default=BOTH_CLIENTS,
        help="the services' Kafka client (YIJU_KAFKA_CLIENT); both (default): the steps on aiokafka, then a "
        "steady step and a burst on each client, side by side (by_client)",
    )
    parser.add_argument(
        "--client-rate",
        type=float,
        help="offered rate of each client's steady step (default 200; --quick 100)",
    )
    parser.add_argument(
        "--client-burst",
        type=int,
        help="sentences in each client's capacity burst (default 3000; --quick 1000)",
    )
    parser.add_argument("--replicas", default="", metavar="SVC=N,...", help="service replicas, e.g. intent=2")
    parser.add_argument("--env", action="append", default=[], metavar="K=V", help="extra service environment")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results.json")
    parser.add_argument("--png", type=Path, default=REPO_ROOT / "bench" / "latency.png")
    args = parser.parse_args(argv)
    config = BenchConfig(
        via=args.via,
        users=args.users,
        p99_limit_ms=args.p99_limit_ms,
        keep_going=args.keep_going,
        latency_basis=args.latency_from,
        fresh_per_step=args.fresh_platform_per_step,
        sample_ratio=args.sample_ratio,
        kafka_client=KAFKA_CLIENTS[0] if args.kafka_client == BOTH_CLIENTS else args.kafka_client,
        compare_clients=KAFKA_CLIENTS if args.kafka_client == BOTH_CLIENTS else (),
    )
    if not 0.0 <= args.sample_ratio <= 1.0:
        parser.error(f"--sample-ratio {args.sample_ratio:g}: a ratio must be between 0 and 1")
    if args.quick:
        config.step_s, config.warmup_s, config.raw_records, config.drain_s = 10.0, 5.0, 50_000, 20.0
        config.burst = 3000
        config.rates = (50, 100, 200, 400)
        config.sampling_rate = 100.0
        config.client_rate, config.client_burst = 100.0, 1000
    if args.client_rate is not None:
        config.client_rate = args.client_rate
    if args.client_burst is not None:
        config.client_burst = args.client_burst
    if args.rates:
        config.rates = tuple(float(r) for r in args.rates.split(",") if r.strip())
    if args.step_s:
        config.step_s = args.step_s
    if args.raw_records:
        config.raw_records = args.raw_records
    if args.drain_s:
        config.drain_s = args.drain_s
    if args.burst is not None:
        config.burst = args.burst
    if args.sampling_rate is not None:
        config.sampling_rate = args.sampling_rate
    for item in filter(None, (p.strip() for p in args.replicas.split(","))):
        name, _, count = item.partition("=")
        config.replicas[name.strip()] = int(count)
    for item in args.env:
        key, _, value = item.partition("=")
        config.extra_env[key.strip()] = value
    config.out, config.png = args.out, args.png
    return config


def model_mode(argv: list[str]) -> bool:
    """`--model sim` (or `--model=sim`) among the arguments: the model benchmark instead."""
    return "--model=sim" in argv or any(
        argv[i] == "--model" and argv[i + 1] == "sim" for i in range(len(argv) - 1)
    )


async def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if model_mode(args):  # make bench BENCH_ARGS="--model sim ...": the bench with the simulated model
        from yiju_infra.bench.model_bench import main as model_main

        return await model_main(args)
    config = parse_args(args)
    console = bench_console()
    results = await PipelineBench(config, console).run()
    config.out.parent.mkdir(parents=True, exist_ok=True)
    config.out.write_text(json.dumps(results, ensure_ascii=False, indent=2))
    title = f"yiju pipeline, {results['machine']['cpus']} cores, via {config.via}"
    drawn = latency_png(
        results["steps"], config.png, config.p99_limit_ms, title, results.get("capacity_sentences_per_s")
    )
    headline = {k: results[k] for k in HEADLINE}
    console.print_json(json.dumps(headline))
    console.print(f"wrote {config.out}" + (f" and {config.png}" if drawn else " (no matplotlib: no plot)"))
    return 0


if __name__ == "__main__":
    sys.exit(uvloop.run(main()))
