"""One load test from start to end (what `yiju load` runs): offer the profile, drain, check, report."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from yiju.common.catalog import Catalog
from yiju.common.redis import create_redis
from yiju.common.settings import Settings
from yiju.loadgen.checks import money_check, verify_projection, wallet_spent
from yiju.loadgen.profiles import Constant, Profile, Ramp, Spike, parse_steps
from yiju.loadgen.report import LiveProgress, phase_table
from yiju.loadgen.runner import LoadConfig, LoadRunner


def build_profile(
    kind: str,
    rate: float,
    duration_s: float,
    *,
    to: float | None = None,
    factor: float = 10.0,
    spike_at_s: float = 10.0,
    rise_s: float = 10.0,
    hold_s: float = 10.0,
    steps: str = "",
) -> Profile:
    if kind == "constant":
        return Constant(rate, duration_s)
    if kind == "ramp":
        return Ramp(rate, to if to is not None else rate * 10, duration_s)
    if kind == "spike":
        return Spike(
            rate, duration_s, factor=factor, at_s=spike_at_s, rise_s=min(rise_s, 10.0), hold_s=hold_s
        )
    if kind == "steps":
        return parse_steps(steps)
    raise ValueError(f"unknown profile {kind!r} (constant, ramp, spike, steps)")


async def load_test(
    settings: Settings,
    catalog: Catalog,
    config: LoadConfig,
    profile: Profile,
    *,
    drain_s: float = 60.0,
    console: Console | None = None,
    verify: bool = True,
) -> dict[str, Any]:
    """Runs `profile` against the platform `settings` points at; returns the figures (and prints them)."""
    console = console or Console(stderr=True)
    redis = create_redis(settings) if verify else None
    try:
        async with LoadRunner(settings, catalog, config) as runner:
            before = await wallet_spent(redis, runner.pool.ids) if redis is not None else {}
            console.print(
                f"yiju load: {profile.describe()} via {config.via}, {len(runner.pool)} users, "
                f"{len(runner.workload.sentences)} sentences (Zipf s={config.zipf_s}), run {runner.run_id}",
                highlight=False,
            )
            with LiveProgress(console) as live:
                runner.on_tick = live.tick
                phase = await runner.run_phase(profile)
                drained = await runner.drain(drain_s)
            result = runner.phase_result(phase, final=True)
            result["drained"] = drained
            result["via"] = config.via
            result["run_id"] = runner.run_id
            result["redelivered"] = runner.tracker.counters.redelivered
            result["duplicate_examples"] = runner.tracker.counters.examples
            if redis is not None:
                result["projection"] = await verify_projection(redis, runner.tracks(phase))
                after = await wallet_spent(redis, runner.pool.ids)
                result["money"] = money_check(before, after, runner.tracks(phase))
    finally:
        if redis is not None:
            await redis.aclose()
    console.print(phase_table([result]))
    if "projection" in result:
        p, m = result["projection"], result["money"]
        console.print(
            f"projection: {p['completed']}/{p['checked']} COMPLETED  |  wallets charged "
            f"{m['charged_fen']} fen, captured {m['captured_fen']} fen: {'ok' if m['ok'] else 'MISMATCH'}",
            highlight=False,
        )
    return result
