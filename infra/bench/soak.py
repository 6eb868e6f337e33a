"""Soak test: one platform at a constant rate for a long time (`make soak`).

    make soak                                      # 100 sentences/s for 30 minutes
    make soak SOAK_ARGS="--rate 50 --minutes 3"    # a short check

Starts one LocalPlatform (the broker, Apache Kafka by default, Redis, the five services, rules backend,
YIJU_SYNTHETIC_USERS synthetic users) on free ports in a temporary data dir, warms it up, then offers
sentences open loop at `--rate` for `--minutes` with the bench's load generator (yiju.loadgen). It asks
one question: does the platform stay as fast at minute 30 as at minute 1, or does something (the broker's
log, Redis, a leak) grow and slow it down?

Per minute (sentences by their intended send time): sent, completed, p50/p99 from intent accepted to
COMPLETED (as `make bench`) and from the intended send time, CPU (% of a core) and RSS of every process
(the broker, Redis, each service and the load generator itself), and the disk the broker's log takes.
At the end: the p99 of the first and of the last 5 minutes (halves of a run shorter than 10 minutes), the
drift (last / first - 1) and whether it stayed within 20 %; lost and duplicated sentences, the projection
and money checks, and the platform's CPU per completed sentence.

Writes bench/soak.json (also after every minute, `complete: false` until the end) and bench/soak.png.
Bounded: the whole run has a time budget; whatever happens, every process it started is stopped and the
data dir removed. Exit status 0 when nothing was lost or duplicated and the target was met.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import signal
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
from yiju.loadgen.report import LiveProgress
from yiju.loadgen.runner import LoadRunner, Phase
from yiju.loadgen.watcher import Track, reads_from_end
from yiju_infra.bench import cpu
from yiju_infra.bench.broker_info import broker_disk_bytes, broker_in_use
from yiju_infra.bench.console import bench_console
from yiju_infra.bench.platform_load import load_config_for
from yiju_infra.bench.resources import rss_by_name
from yiju_infra.bench.run_info import config_summary, machine_summary
from yiju_infra.bench.soak_plot import soak_png
from yiju_infra.bench.soak_stats import (
    LOADGEN,
    MINUTE_MS,
    SUMMARY_KEYS,
    TARGET_DRIFT,
    ResourceSample,
    bucket_by_minute,
    headline,
    minute_row,
    minute_rows,
)
from yiju_infra.local.platform import LocalPlatform

POLL_S = 0.25  # how often a minute's line checks whether its sentences have settled


@dataclass
class SoakConfig:
    rate: float = 100.0
    minutes: int = 30
    warmup_s: float = 60.0  # JIT, caches and connections settle before the first measured minute
    settle_s: float = 15.0  # at most this long after a minute ends for its sentences to settle
    drain_s: float = 120.0  # after the last minute, for the stragglers
    via: str = "kafka"
    users: int = 10_000
    ready_timeout_s: float = 120.0
    extra_env: dict[str, str] = field(default_factory=dict)
    out: Path = REPO_ROOT / "bench" / "soak.json"
    png: Path = REPO_ROOT / "bench" / "soak.png"

    @property
    def budget_s(self) -> float:
        """The longest the whole run may take: start, warm-up, the minutes, drain and checks, with room."""
        start = 60 + self.ready_timeout_s
        return start + 2 * self.warmup_s + 30 + self.minutes * 60 + self.settle_s + self.drain_s + 300


def mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


def progress_line(row: dict[str, Any], minutes: int) -> str:
    """The line printed after each minute."""
    cpu_percent = row["cpu_percent"]
    rss_total = sum(row["rss_mb"].values())
    broker_rss = row["rss_mb"].get("broker")
    lost = row["lost"] or row["unsettled"]
    return (
        f"[{row['minute']:>{len(str(minutes))}}/{minutes}] "
        f"sent {row['offered']}, completed {row['completed']}"
        + (f", {lost} not settled" if lost else "")
        + " | "
        f"p50 {row['p50_ms']:.0f} p99 {row['p99_ms']:.0f} ms (e2e p99 {row['e2e_p99_ms']:.0f}) | "
        f"CPU platform {row['platform_cpu_percent']:.0f}% loadgen {cpu_percent.get(LOADGEN, 0):.0f}% "
        f"others {cpu_percent.get('others', 0):.0f}% | "
        f"RSS broker {f'{broker_rss:.0f}' if broker_rss is not None else '-'} MiB, all {rss_total:.0f} MiB | "
        f"broker log {mib(row['broker_disk_bytes'])}"
    )


def minutes_table(rows: list[dict[str, Any]]) -> Table:
    names = [n for n in rows[-1]["cpu_percent"] if n not in SUMMARY_KEYS] if rows else []
    table = Table(
        title="per minute: latency in ms to COMPLETED, CPU in % of one core (200 = both cores), RSS in MiB",
        title_justify="left",
    )
    for column in ("min", "sent", "done", "p50", "p99", "e2e p99", "platform", *names, "others"):
        table.add_column(column, justify="right")
    table.add_column("RSS all", justify="right")
    table.add_column("broker log", justify="right")
    for r in rows:
        table.add_row(
            str(r["minute"]),
            str(r["offered"]),
            str(r["completed"]),
            f"{r['p50_ms']:.0f}",
            f"{r['p99_ms']:.0f}",
            f"{r['e2e_p99_ms']:.0f}",
            f"{r['platform_cpu_percent']:.0f}",
            *(f"{r['cpu_percent'].get(n, 0):.0f}" for n in names),
            f"{r['cpu_percent'].get('others', 0):.0f}",
            f"{sum(r['rss_mb'].values()):.0f}",
            mib(r["broker_disk_bytes"]),
        )
    return table


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps(data, ensure_ascii=False, indent=2))
    partial.replace(path)


class Soak:
    def __init__(self, config: SoakConfig, console: Console) -> None:
        self.config = config
        self.console = console
        self.started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.broker: dict[str, str] = {}
        self.watch_from_end = False

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    async def run(self) -> dict[str, Any]:
        """Starts the platform, soaks it, checks it, stops it; returns the results."""
        cfg = self.config
        env = {"YIJU_SYNTHETIC_USERS": str(cfg.users), "YIJU_GATEWAY_BACKENDS": "rules", **cfg.extra_env}
        plat = LocalPlatform.on_free_ports(Path(tempfile.mkdtemp(prefix="yiju-soak-")), extra_env=env)
        try:
            async with asyncio.timeout(cfg.budget_s):
                self.say(f"starting the platform in {plat.data_dir} ...")
                await plat.start(ready_timeout=cfg.ready_timeout_s)
                self.broker = broker_in_use(plat)
                self.watch_from_end = reads_from_end(plat.broker_kind)
                self.say(
                    f"broker: {self.broker['description']}; processes: "
                    + ", ".join(f"{n} pid {p}" for n, p in plat.pids.items())
                )
                return await self._load(plat)
        finally:
            self.say("stopping the platform ...")
            await plat.stop_all()
            shutil.rmtree(plat.data_dir, ignore_errors=True)

    async def _load(self, plat: LocalPlatform) -> dict[str, Any]:
        cfg = self.config
        settings = plat.settings()
        catalog = load_catalog(settings.catalog_dir, cfg.users)
        load_config = load_config_for(plat, cfg.via, cfg.users)
        redis = create_redis(url=plat.redis_url)
        try:
            async with LoadRunner(settings, catalog, load_config) as runner:
                before = await wallet_spent(redis, runner.pool.ids)
                with LiveProgress(self.console, plain_every_s=math.inf) as live:
                    runner.on_tick = live.tick
                    if cfg.warmup_s > 0:
                        self.say(f"warm-up: {cfg.rate:g}/s for {cfg.warmup_s:g}s (not measured) ...")
                        await runner.run_phase(Constant(cfg.rate, cfg.warmup_s), "warm-up")
                        await runner.drain(30)
                    self.say(
                        f"soak: {cfg.rate:g} sentences/s via {cfg.via} for {cfg.minutes} min "
                        f"(a line a minute; {cfg.out} is rewritten after each) ..."
                    )
                    phase, samples = await self._soak(runner, plat)
                    self.say(f"final drain (up to {cfg.drain_s:g}s) ...")
                    drained = await runner.drain(cfg.drain_s)
                tracks = runner.tracks(phase)
                overall = runner.overall_result(final=True)
                checks = {
                    "drained": drained,
                    "redelivered_terminal_events": runner.tracker.counters.redelivered,
                    "duplicate_examples": runner.tracker.counters.examples,
                    "projection": await verify_projection(redis, tracks, wait_s=30),
                    "money": money_check(before, await wallet_spent(redis, runner.pool.ids), runner.tracks()),
                    "restarts": dict(plat.restarts),
                }
        finally:
            await redis.aclose()
        buckets = bucket_by_minute(tracks, phase.started_ms, cfg.minutes)
        rows = minute_rows(buckets, phase.started_ms, samples, final=True)
        return self._results(buckets, rows, samples, overall, checks, complete=True)

    async def _soak(self, runner: LoadRunner, plat: LocalPlatform) -> tuple[Phase, list[ResourceSample]]:
        """Offers the constant rate for the configured minutes; samples resources at every minute boundary
        and prints a line for each minute once its sentences have settled."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        samples = [self._sample(plat)]
        began = loop.time()
        sending = asyncio.create_task(runner.run_phase(Constant(cfg.rate, cfg.minutes * 60), "soak"))
        rows: list[dict[str, Any]] = []
        try:
            for minute in range(cfg.minutes):
                await self._until(began + (minute + 1) * 60, sending)
                samples.append(self._sample(plat))
                phase = runner.phases[-1]
                bucket = await self._settled_minute(runner, phase, minute, sending)
                rows.append(
                    minute_row(minute, bucket, phase.started_ms, samples[-2], samples[-1], final=False)
                )
                self.say(progress_line(rows[-1], cfg.minutes))
                buckets = bucket_by_minute(runner.tracks(phase), phase.started_ms, cfg.minutes)
                write_json(cfg.out, self._results(buckets, rows, samples, None, None, complete=False))
            return await sending, samples
        finally:
            if not sending.done():
                sending.cancel()
                await asyncio.gather(sending, return_exceptions=True)

    @staticmethod
    async def _until(deadline: float, sending: asyncio.Task[Phase]) -> None:
        """Waits until loop time `deadline`; raises at once if the sending task fails meanwhile."""
        loop = asyncio.get_running_loop()
        while (left := deadline - loop.time()) > 0:
            if sending.done():
                sending.result()  # raises what sending raised
                await asyncio.sleep(left)  # the schedule is done; the minute is not over yet
                return
            await asyncio.wait({sending}, timeout=left)

    async def _settled_minute(
        self, runner: LoadRunner, phase: Phase, minute: int, sending: asyncio.Task[Phase]
    ) -> list[Track]:
        """This minute's sentences, once all of them are sent and settled (or settle_s has passed)."""
        loop = asyncio.get_running_loop()
        end_ms = phase.started_ms + (minute + 1) * MINUTE_MS
        deadline = loop.time() + self.config.settle_s
        while True:
            last = next(reversed(runner.tracker.by_key.values()), None)
            all_sent = sending.done() or (last is not None and last.intended_ms >= end_ms)
            if all_sent:
                bucket = bucket_by_minute(runner.tracks(phase), phase.started_ms, self.config.minutes)[minute]
                if all(t.settled for t in bucket) or loop.time() >= deadline:
                    return bucket
            elif loop.time() >= deadline:
                return bucket_by_minute(runner.tracks(phase), phase.started_ms, self.config.minutes)[minute]
            await self._until(loop.time() + POLL_S, sending)

    def _sample(self, plat: LocalPlatform) -> ResourceSample:
        pids = plat.pids
        return ResourceSample(cpu.sample(pids), rss_by_name(pids), broker_disk_bytes(plat))

    def _results(
        self,
        buckets: list[list[Track]],
        rows: list[dict[str, Any]],
        samples: list[ResourceSample],
        overall: dict[str, Any] | None,
        checks: dict[str, Any] | None,
        *,
        complete: bool,
    ) -> dict[str, Any]:
        cfg = self.config
        done_minutes = len(rows)
        figures = headline(buckets[:done_minutes], samples[: done_minutes + 1], done_minutes)
        if overall is None:  # during the run: what the minutes so far say
            offered = sum(r["offered"] for r in rows)
            completed = sum(r["completed"] for r in rows)
            lost = duplicated = failed = None
        else:
            offered, completed = overall["offered"], overall["completed"]
            lost, duplicated, failed = overall["lost"], overall["duplicated"], overall["failed"]
        disk = [r["broker_disk_bytes"] for r in rows if r["broker_disk_bytes"] is not None]
        return {
            "benchmark": "soak (make soak): a constant rate on one platform",
            "complete": complete,
            "broker": self.broker,
            "rate": cfg.rate,
            "minutes": cfg.minutes,
            "minutes_done": done_minutes,
            "via": cfg.via,
            "users": cfg.users,
            **figures,
            "target": f"last window's p99 within {TARGET_DRIFT:.0%} of the first window's, either way",
            "offered": offered,
            "completed": completed,
            "lost": lost,
            "duplicated": duplicated,
            "failed": failed,
            "broker_disk_bytes_end": disk[-1] if disk else None,
            "per_minute": rows,
            "checks": checks,
            "watcher_from_end": self.watch_from_end,
            "notes": {
                "latency": "p50_ms/p99_ms: intent accepted (IntentAccepted.accepted_at_ms) to "
                "PaymentCaptured (COMPLETED), as make bench; e2e_*: from the sentence's intended send time "
                "(open loop). A sentence belongs to the minute of its intended send time",
                "windows": "first_5min_p99_ms / last_5min_p99_ms: p99 of all sentences of the first and the "
                "last window_minutes minutes (5, or half of a shorter run); p99_drift = last / first - 1",
                "cpu": "cpu_percent: % of one core over the minute (200 = a 2-core machine); others = "
                "machine busy minus our processes; cpu_ms_per_sentence: the platform's processes only "
                "(broker, Redis, services), not the load generator",
                "counts": "offered/completed/lost/duplicated/failed: every sentence of the run, warm-up "
                "included; per_minute covers the measured minutes only",
            },
            "config": config_summary(cfg),
            "machine": machine_summary(),
            "started_at": self.started_at,
        }


def summary_lines(results: dict[str, Any]) -> list[str]:
    """The verdict, in a few lines."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f} ms"

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:+.1%}"

    window = results["window_minutes"]
    met = "[green]target met[/]" if results["target_met"] else "[red]target NOT met[/]"
    checks = results.get("checks") or {}
    projection, money = checks.get("projection") or {}, checks.get("money") or {}
    disk = [r["broker_disk_bytes"] for r in results["per_minute"] if r["broker_disk_bytes"] is not None]
    lines = [
        f"[bold]soak[/]: {results['rate']:g} sentences/s for {results['minutes']} min on "
        f"{results['broker']['description']}",
        f"p99, intent accepted -> COMPLETED: first {window} min {ms(results['first_5min_p99_ms'])}, last "
        f"{window} min {ms(results['last_5min_p99_ms'])}, drift {pct(results['p99_drift'])}: {met} "
        f"(target: within ±{TARGET_DRIFT:.0%})",
        f"p99 from the intended send: first {ms(results['first_5min_e2e_p99_ms'])}, last "
        f"{ms(results['last_5min_e2e_p99_ms'])}, drift {pct(results['e2e_p99_drift'])}",
        f"sentences: {results['offered']} offered, {results['completed']} completed, lost {results['lost']}, "
        f"duplicated {results['duplicated']}, failed {results['failed']}; projection "
        f"{projection.get('completed', '-')}/{projection.get('checked', '-')} COMPLETED; wallets "
        + ("match" if money.get("ok") else "MISMATCH"),
        f"CPU: {results['cpu_ms_per_sentence']} ms per sentence (platform), "
        f"{results['cpu_ms_per_sentence_with_loadgen']} with the load generator",
    ]
    if disk:
        lines.append(f"broker log on disk: {mib(disk[0])} after minute 1, {mib(disk[-1])} at the end")
    return lines


def passed(results: dict[str, Any]) -> bool:
    return bool(results["target_met"]) and results["lost"] == 0 and results["duplicated"] == 0


def parse_args(argv: list[str] | None = None) -> SoakConfig:
    parser = argparse.ArgumentParser(
        prog="python -m yiju_infra.bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rate", type=float, default=100.0, help="sentences/s offered (default 100)")
    parser.add_argument("--minutes", type=int, default=30, help="measured minutes (default 30)")
    parser.add_argument(
        "--warmup-s", type=float, default=60.0, help="unmeasured warm-up at the rate (default 60)"
    )
    parser.add_argument(
        "--drain-s", type=float, default=120.0, help="wait for stragglers at the end (default 120)"
    )
    parser.add_argument("--via", choices=("kafka", "http", "grpc"), default="kafka")
    parser.add_argument("--users", type=int, default=10_000, help="synthetic users (default 10000)")
    parser.add_argument("--env", action="append", default=[], metavar="K=V", help="extra service environment")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "soak.json")
    parser.add_argument("--png", type=Path, default=REPO_ROOT / "bench" / "soak.png")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.minutes < 1:
        parser.error("--rate must be > 0 and --minutes >= 1")
    config = SoakConfig(
        rate=args.rate,
        minutes=args.minutes,
        warmup_s=args.warmup_s,
        drain_s=args.drain_s,
        via=args.via,
        users=args.users,
        out=args.out,
        png=args.png,
    )
    for item in args.env:
        key, _, value = item.partition("=")
        config.extra_env[key.strip()] = value
    return config


async def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    console = bench_console()
    me = asyncio.current_task()
    if me is not None:  # `kill` (SIGTERM) stops the platform as Ctrl-C does
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, me.cancel)
    try:
        results = await Soak(config, console).run()
    except TimeoutError:
        console.print(f"[red]soak: ran past its time budget ({config.budget_s:.0f}s); stopped[/]")
        return 2
    except asyncio.CancelledError:
        console.print("[red]soak: interrupted; the platform was stopped[/]")
        return 130
    write_json(config.out, results)
    broker = results["broker"]["description"].split(",")[0]
    title = (
        f"yiju soak: {config.rate:g}/s for {config.minutes} min, {broker}, {results['machine']['cpus']} cores"
    )
    drawn = soak_png(results["per_minute"], config.png, title)
    console.print(minutes_table(results["per_minute"]))
    for line in summary_lines(results):
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"wrote {config.out}" + (f" and {config.png}" if drawn else " (no matplotlib: no plot)"))
    return 0 if passed(results) else 1


if __name__ == "__main__":
    sys.exit(uvloop.run(main()))
