"""`make chaos`: the whole platform under load while the broker, Redis and every service are SIGKILLed.

`python -m yiju_infra.chaos.run` then proves that nothing was lost and no money moved twice:

1. Starts a LocalPlatform on free ports (own data dir; the watcher restarts whatever dies) with a failing
   SKU injected (YIJU_FULFILMENT_FAIL_SKUS), load-test users, short confirmations and a quick sweep.
2. Submits N sentences (default 10,000) at a steady rate: successes, declines, clarifications,
   rejections, injected fulfilment failures and orders waiting for confirmation (confirmed, cancelled
   or left to expire); each with its own idempotency key, some submitted twice.
3. Meanwhile SIGKILLs the Kafka broker (default 3 times) and Redis (2 times) at evenly spread points,
   and services in between (every one at least once): one failure at a time, each kill made while the
   platform serves and followed by a wait until it serves again (see `yiju_infra.chaos.killer`). A
   broker that keeps its log in memory (the tansu fallback) is not killed, and the report says so.
4. Waits until every order is terminal, then checks: lost orders, duplicate captures, double subsidies,
   budget overspending and a full reconciliation (events vs ledgers vs Redis); writes
   chaos-report.json (with `kills_by_process`) and prints a table. Exit 1 if any of those is not
   zero, or if a process was killed fewer times than its minimum.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from yiju.common.catalog import load_catalog
from yiju.common.redis import create_redis
from yiju_infra.chaos import workload
from yiju_infra.chaos.catalog import prepare_catalog
from yiju_infra.chaos.checks import verify
from yiju_infra.chaos.driver import Driver, Tokens
from yiju_infra.chaos.killer import Kill, Killer
from yiju_infra.local.platform import LocalPlatform

log = logging.getLogger("yiju.chaos")
MUST_BE_ZERO = (
    "lost",
    "not_accepted",
    "duplicate_captures",
    "double_subsidies",
    "budget_overspent_fen",
    "ledger_diff_fen",
    "inconsistent_orders",
    "idempotency_mismatches",
    "held_left_fen",
    "unexpected_outcome_count",  # an order that ended otherwise than its sentence should have
    "unexpected_sweeps",  # the sweeper settled an order the workload did not leave to it
)

# What `make chaos` must reach to count as the proof: 10,000 sentences, the broker killed 3 times, Redis
# twice, every service at least once.
FULL_RUN_SENTENCES = 10_000
FULL_RUN_MINIMUMS = {"broker": 3, "redis": 2, "service": 1}


@dataclass
class ChaosConfig:
    sentences: int = 10_000
    rate: float = 25.0  # sentences per second
    concurrency: int = 64
    kill_every_s: float = 6.0  # mean calm (uniform ±50%) between the platform serving again and a kill
    # Least kills per process over the run (a full run needs FULL_RUN_MINIMUMS; see `scaled_down`).
    broker_kills: int = 3  # evenly spread over the submission, taking turns with Redis
    redis_kills: int = 2
    service_kills: int = 1  # each service
    recover_timeout_s: float = 180.0  # how long a killed process may take to serve again
    seed: int = 7
    synthetic_users: int = 200
    sweep_after_s: float = 60.0
    sweep_interval_s: float = 2.0
    confirmation_ttl_s: int = 20
    settle_timeout_s: float = 300.0
    data_dir: Path | None = None
    report_path: Path | None = Path("chaos-report.json")
    progress: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)

    def minimums(self) -> dict[str, int]:
        return {"broker": self.broker_kills, "redis": self.redis_kills, "service": self.service_kills}

    @property
    def scaled_down(self) -> bool:
        """True for a run smaller than the full one (fewer sentences or kills): a test, not the proof."""
        return self.sentences < FULL_RUN_SENTENCES or any(
            self.minimums()[k] < n for k, n in FULL_RUN_MINIMUMS.items()
        )

    def platform_env(self, catalog_dir: Path) -> dict[str, str]:
        return {
            "YIJU_FULFILMENT_FAIL_SKUS": workload.FAILING_SKU,
            "YIJU_SYNTHETIC_USERS": str(self.synthetic_users),
            "YIJU_CATALOG_DIR": str(catalog_dir),
            "YIJU_SWEEP_AFTER_S": str(self.sweep_after_s),
            "YIJU_SWEEP_INTERVAL_S": str(self.sweep_interval_s),
            "YIJU_EDGE_RATE_PER_USER_PER_S": "100000",
            "YIJU_EDGE_RATE_BURST": "100000",
            "YIJU_LOG_LEVEL": "WARNING",
            **self.extra_env,
        }


class View:
    """The progress bars (or nothing, in tests)."""

    def __init__(self, enabled: bool, console: Console) -> None:
        self.progress = (
            Progress(
                TextColumn("{task.description:<34}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            )
            if enabled
            else None
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> View:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def bar(self, name: str, description: str, total: int) -> None:
        if self.progress is not None:
            self.tasks[name] = self.progress.add_task(description, total=total)

    def update(self, name: str, **kwargs: Any) -> None:
        if self.progress is not None and name in self.tasks:
            self.progress.update(self.tasks[name], **kwargs)


def _prepare(config: ChaosConfig) -> tuple[Path, Path]:
    """The run's data dir (a new temporary one unless given) and its catalog copy."""
    data_dir = Path(config.data_dir or tempfile.mkdtemp(prefix="yiju-chaos-")).resolve()
    return data_dir, prepare_catalog(data_dir / "catalog", confirmation_ttl_s=config.confirmation_ttl_s)


async def run_chaos(config: ChaosConfig, console: Console | None = None) -> dict[str, Any]:
    """Runs one chaos experiment; returns the report (also written to config.report_path)."""
    console = console or Console(stderr=True)
    began = time.monotonic()
    phases: dict[str, float] = {}
    data_dir, catalog_dir = _prepare(config)
    sentences = workload.build(config.sentences, seed=config.seed, synthetic_users=config.synthetic_users)
    platform = LocalPlatform.on_free_ports(
        data_dir, extra_env=config.platform_env(catalog_dir), auto_restart=True
    )
    async with platform:
        await platform.start(ready_timeout=180)
        phases["start_s"] = round(time.monotonic() - began, 1)
        redis = create_redis(url=platform.redis_url)
        settings = platform.settings()
        driver = Driver(platform.api_url, Tokens(data_dir, settings), redis, config.rate, config.concurrency)
        killer = Killer(
            platform,
            config.kill_every_s,
            len(sentences) / config.rate,
            broker_kills=config.broker_kills,
            redis_kills=config.redis_kills,
            service_kills=config.service_kills,
            seed=config.seed,
            recover_timeout_s=config.recover_timeout_s,
        )
        if not killer.broker_killable:
            log.warning("chaos: the broker is spared: %s", killer.broker_note)
        try:
            with View(config.progress, console) as view:
                view.bar("submit", "submitting", len(sentences))
                minimums = killer.minimums()
                view.bar("kills", "kills owed (minimum per process)", sum(minimums.values()))

                def back(_: Kill) -> None:
                    owed = sum(killer.missing().values())
                    done = killer.by_target()
                    infra = ", ".join(f"{t} {done.get(t, 0)}" for t in ("broker", "redis") if t in minimums)
                    view.update(
                        "kills",
                        completed=sum(minimums.values()) - owed,
                        description=f"kills: {len(killer.kills)} ({infra})",
                    )

                killer.on_kill = back
                driver.on_submitted = lambda: view.update("submit", advance=1)
                stop = asyncio.Event()
                side = [asyncio.create_task(killer.run(stop)), asyncio.create_task(driver.answer_loop(stop))]
                t0 = time.monotonic()
                try:
                    await driver.submit_all(sentences)
                finally:
                    stop.set()
                    await asyncio.gather(*side)
                phases["submit_s"] = round(time.monotonic() - t0, 1)
                t0 = time.monotonic()
                if killer.missing():
                    log.warning("chaos: kills still owed after the submission: %s", killer.missing())
                    answering = asyncio.Event()
                    answers = asyncio.create_task(driver.answer_loop(answering))
                    try:
                        await killer.catch_up()
                    finally:
                        answering.set()
                        await answers
                    phases["catch_up_kills_s"] = round(time.monotonic() - t0, 1)
                    t0 = time.monotonic()
                await platform.wait_ready(timeout=180, fail_fast=False)  # everything back
                await driver.resolve_unknown()
                accepted = sum(1 for s in driver.submissions if s.order_id)
                view.bar("settle", "waiting for every order to settle", accepted)
                statuses = await driver.settle(
                    config.settle_timeout_s, lambda done, total: view.update("settle", completed=done)
                )
                phases["settle_s"] = round(time.monotonic() - t0, 1)
            t0 = time.monotonic()
            campaign = load_catalog(catalog_dir).campaign
            findings, _ = await verify(settings, redis, campaign, driver.submissions, statuses)
            phases["verify_s"] = round(time.monotonic() - t0, 1)
        finally:
            await redis.aclose()
        restarts = dict(platform.restarts)
    figures = findings.figures
    missing = killer.missing()
    report: dict[str, Any] = {
        "sentences": len(sentences),
        **{k: figures[k] for k in ("submitted", "reached_terminal", "lost")},
        "duplicate_captures": figures["duplicate_captures"],
        "double_subsidies": figures["double_subsidies"],
        "budget_overspent_fen": figures["budget_overspent_fen"],
        "ledger_diff_fen": figures["ledger_diff_fen"],
        "kills": len(killer.kills),
        "kills_by_process": killer.by_target(),
        "kill_minimums": killer.minimums(),
        "kill_minimums_met": not missing,
        "kills_missing": missing,
        "scaled_down": config.scaled_down,
        "kill_minimums_note": _minimums_note(config, killer),
        "broker": {
            "kind": platform.broker_kind,
            "description": platform.broker.description if platform.broker is not None else platform.bootstrap,
            "durable": killer.broker_killable,
            "killed": killer.by_target().get("broker", 0),
            "note": killer.broker_note,
        },
        "wall_s": round(time.monotonic() - began, 1),
        **{k: v for k, v in figures.items() if k not in ("submitted", "reached_terminal", "lost")},
        "recovery_s": killer.recovery(),
        "kill_log": [asdict(k) for k in killer.kills],
        "restarts": restarts,
        "requests": driver.requests,
        "client_retries": driver.retries,
        "phases": phases,
        "rate_per_s": config.rate,
        "throughput_per_s": round(
            len(sentences) / max(phases.get("submit_s", 1) + phases.get("settle_s", 0), 1), 1
        ),
        "examples": findings.examples,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "data_dir": str(data_dir),
        "ok": not missing and all(figures.get(k, 0) == 0 for k in MUST_BE_ZERO),
    }
    if config.report_path is not None:
        config.report_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


def _minimums_note(config: ChaosConfig, killer: Killer) -> str:
    def said(broker: int, redis: int, service: int) -> str:
        return f"broker >= {broker}, redis >= {redis}, every service >= {service}"

    wanted = said(
        config.broker_kills if killer.broker_killable else 0, config.redis_kills, config.service_kills
    )
    if not killer.broker_killable:
        wanted += f" (the broker is {killer.broker_note})"
    if not config.scaled_down:
        return f"full run: kills {wanted}"
    full = FULL_RUN_MINIMUMS
    return (
        f"scaled-down run ({config.sentences} sentences): kills {wanted}; a full run is "
        f"{FULL_RUN_SENTENCES} sentences with {said(full['broker'], full['redis'], full['service'])}"
    )


def summary_table(report: dict[str, Any]) -> Table:
    table = Table(
        title=f"chaos run: {report['sentences']} sentences, {report['kills']} kills, {report['wall_s']} s"
    )
    table.add_column("check")
    table.add_column("value", justify="right")
    rows = [
        "submitted",
        "reached_terminal",
        "lost",
        "not_accepted",
        "duplicate_captures",
        "duplicate_authorizations",
        "double_subsidies",
        "budget_overspent_fen",
        "ledger_diff_fen",
        "held_left_fen",
        "inconsistent_orders",
        "idempotency_mismatches",
        "unexpected_outcome_count",
        "settled_by_sweeper",
        "unexpected_sweeps",
        "kills",
    ]
    for name in rows:
        value = report.get(name, 0)
        style = "red" if name in MUST_BE_ZERO and value else "green" if name in MUST_BE_ZERO else ""
        table.add_row(name, f"[{style}]{value}[/{style}]" if style else str(value))
    by_process = report["kills_by_process"]
    minimums = report["kill_minimums"]
    cells = []
    for name in sorted({*by_process, *minimums}):
        done, least = by_process.get(name, 0), minimums.get(name, 0)
        cell = f"{name} {done}" + (f"/{least}" if least else "")
        cells.append(f"[red]{cell}[/red]" if done < least else cell)
    table.add_row("kills by process (done/minimum)", ", ".join(cells))
    recovery = report.get("recovery_s", {})
    if recovery:
        table.add_row(
            "back after kill (median/max s)",
            ", ".join(f"{k} {v['median_s']}/{v['max_s']}" for k, v in recovery.items()),
        )
    table.add_row("broker", f"{report['broker']['description']}: {report['broker']['note']}")
    table.add_row("kill minimums", report["kill_minimums_note"])
    table.add_row("statuses", ", ".join(f"{k} {v}" for k, v in sorted(report["statuses"].items())))
    if report.get("unexpected_outcomes"):
        table.add_row("unexpected outcomes", json.dumps(report["unexpected_outcomes"]))
    table.add_row("dead letters", json.dumps(report.get("dead_letters", {})) or "none")
    table.add_row("phases (s)", json.dumps(report["phases"]))
    table.add_row("verdict", "[green]OK[/green]" if report["ok"] else "[red]FAILED[/red]")
    return table


def parse_args(argv: list[str] | None = None) -> ChaosConfig:
    p = argparse.ArgumentParser(prog="python -m yiju_infra.chaos.run", description=__doc__.split("\n")[0])
    p.add_argument("--sentences", "-n", type=int, default=10_000)
    p.add_argument("--rate", type=float, default=25.0, help="sentences per second (default 25)")
    p.add_argument(
        "--kill-every",
        type=float,
        default=6.0,
        help="mean seconds of calm between the platform serving again and the next kill (default 6)",
    )
    p.add_argument("--broker-kills", type=int, default=3, help="kill -9 the broker this often (default 3)")
    p.add_argument("--redis-kills", type=int, default=2, help="kill -9 Redis this often (default 2)")
    p.add_argument(
        "--service-kills", type=int, default=1, help="kill -9 every service at least this often (default 1)"
    )
    p.add_argument(
        "--recover-timeout",
        type=float,
        default=180.0,
        help="seconds a killed process may take to serve again (default 180)",
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--synthetic-users", type=int, default=200)
    p.add_argument("--sweep-after", type=float, default=60.0, help="YIJU_SWEEP_AFTER_S for the run")
    p.add_argument("--settle-timeout", type=float, default=300.0)
    p.add_argument("--data-dir", type=Path, help="default: a new temporary directory")
    p.add_argument("--report", type=Path, default=Path("chaos-report.json"))
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    return ChaosConfig(
        sentences=a.sentences,
        rate=a.rate,
        kill_every_s=a.kill_every,
        broker_kills=a.broker_kills,
        redis_kills=a.redis_kills,
        service_kills=a.service_kills,
        recover_timeout_s=a.recover_timeout,
        seed=a.seed,
        synthetic_users=a.synthetic_users,
        sweep_after_s=a.sweep_after,
        settle_timeout_s=a.settle_timeout,
        data_dir=a.data_dir,
        report_path=a.report,
        progress=not a.no_progress,
    )


async def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    # Not a terminal (CI, a log file): wide lines rather than Rich's 80 columns, one log record a line.
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
    logging.basicConfig(
        level=logging.WARNING,
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
        force=True,
    )
    logging.getLogger("yiju_infra.chaos").setLevel(logging.INFO)  # each kill and each recovery
    report = await run_chaos(config, console)
    Console().print(summary_table(report))
    print(f"report: {config.report_path}", file=sys.stderr)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
