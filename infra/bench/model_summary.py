"""The arithmetic of the model benchmark (yiju_infra.bench.model_bench): the Little's-law bound, the
sustained rate, per-order model figures from the simulated Qwen, the slow-sentence comparison, the
orbit verdict and the targets. Pure functions over plain data, so they are unit-tested on their own.

The bound: a model server serving `slots` sequences at once, each sentence holding a slot for its
model time W (its turns' service times together), completes at most slots / mean(W) sentences a
second (Little's law, L = lambda W with L <= slots); the rest of the pipeline (the rules backend and
the saga) caps it at what it sustains on the machine.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from statistics import NormalDist
from typing import Any

from yiju.loadgen.stats import percentile

Z_99 = NormalDist().inv_cdf(0.99)

# Issue 13's targets for the model benchmark.
MIN_SHARE_OF_BOUND = 0.9  # sustained rate >= 90 % of the bound
P99_MARGIN_MS = 500.0  # end-to-end p99 <= the model's p99 + 500 ms
SLOW_P99_TOLERANCE = 0.2  # with 10 % slow sentences, the others' p99 within 20 % of a run without


def lognormal_mean_s(p50_ms: float, p99_ms: float) -> float:
    """Mean of the lognormal with this median and 99th percentile (the simulator's service time)."""
    sigma = (math.log(p99_ms) - math.log(p50_ms)) / Z_99
    return p50_ms / 1000.0 * math.exp(sigma**2 / 2)


def expected_model_s(
    p50_ms: float,
    p99_ms: float,
    *,
    turns: float = 1.0,
    slow_rate: float = 0.0,
    slow_ms: float = 0.0,
) -> float:
    """Mean model time of a sentence: `turns` lognormal turns; a slow sentence's first turn takes
    slow_ms instead (as the simulator serves SimConfig.slow_rate)."""
    turn_s = lognormal_mean_s(p50_ms, p99_ms)
    normal = turns * turn_s
    slow = slow_ms / 1000.0 + (turns - 1) * turn_s
    return (1 - slow_rate) * normal + slow_rate * slow


def littles_bound(slots: int, mean_model_s: float, rules_capacity: float) -> float:
    """Sentences/s: slots / mean model time, capped by the rules path's capacity."""
    if mean_model_s <= 0:
        return rules_capacity
    return min(slots / mean_model_s, rules_capacity)


def sustained_rate(done_ms: Iterable[float], window: tuple[float, float], settle_ms: float) -> float:
    """Completions per second once the pipeline is full: those done in [start + settle, end] over
    that span. `settle_ms` (a sentence's p99, at most half the step) keeps the first seconds, when
    nothing sent could have finished yet, out of the rate."""
    start, end = window
    settle = min(max(settle_ms, 0.0), (end - start) / 2)
    span_s = (end - start - settle) / 1000.0
    if span_s <= 0:
        return 0.0
    done = sum(1 for t in done_ms if start + settle <= t <= end)
    return round(done / span_s, 1)


def model_orders(orders: Mapping[str, Mapping[str, Any]], order_ids: Iterable[str]) -> dict[str, Any]:
    """What the simulator saw of these orders (its GET /orders, by X-Yiju-Order-Id): calls per order,
    model time per order (service time: no queueing; wall: first request in to last reply out)."""
    seen = [orders[o] for o in order_ids if o in orders]
    service_ms = sorted(1000.0 * o["service_s"] for o in seen)
    wall_ms = sorted(o["last_ms"] - o["first_ms"] for o in seen)
    requests = sum(int(o["requests"]) for o in seen)
    return {
        "orders": len(seen),
        "requests": requests,
        "conversations": sum(int(o["conversations"]) for o in seen),
        # A sentence sent to the model again for the same order: a first turn beyond the first.
        "duplicate_model_calls": sum(max(int(o["conversations"]) - 1, 0) for o in seen),
        "orders_called_twice": sum(1 for o in seen if int(o["conversations"]) > 1),
        "slow_orders": sum(1 for o in seen if o.get("slow")),
        "mean_model_s": round(sum(service_ms) / len(service_ms) / 1000.0, 3) if seen else 0.0,
        "model_p50_ms": round(percentile(service_ms, 50), 1),
        "model_p99_ms": round(percentile(service_ms, 99), 1),
        "model_wall_p99_ms": round(percentile(wall_ms, 99), 1),
    }


def per_1000(count: float, sentences: int) -> float:
    return round(1000.0 * count / sentences, 1) if sentences else 0.0


def slow_comparison(baseline_p99_ms: float, others_p99_ms: float) -> dict[str, Any]:
    """The p99 of the sentences that were not slow, against a run without slow sentences."""
    ratio = others_p99_ms / baseline_p99_ms if baseline_p99_ms > 0 else math.inf
    return {
        "baseline_p99_ms": baseline_p99_ms,
        "others_p99_ms": others_p99_ms,
        "ratio": round(ratio, 3),
        "within_20_percent": ratio <= 1 + SLOW_P99_TOLERANCE,
    }


def orbit_verdict(statuses: Mapping[str, int], lost: int, duplicate_model_calls: int) -> dict[str, Any]:
    """Every order of the orbit run completed, none cancelled (only the sweeper cancels or fails an
    order here: nobody else does), nothing lost, no sentence sent to the model twice. An order the model
    answered with a question (NEEDS_CLARIFICATION: its reading, not the platform's doing) is counted
    apart and does not fail the run; any other outcome does."""
    completed = int(statuses.get("COMPLETED", 0))
    cancelled = int(statuses.get("CANCELLED", 0)) + int(statuses.get("FAILED", 0))
    questions = int(statuses.get("NEEDS_CLARIFICATION", 0))
    others = {
        k: v
        for k, v in statuses.items()
        if k not in ("COMPLETED", "CANCELLED", "FAILED", "NEEDS_CLARIFICATION")
    }
    return {
        "completed": completed,
        "cancelled_by_sweeper": cancelled,
        "needs_clarification": questions,
        "not_completed": dict(others),
        "lost": lost,
        "duplicate_model_calls": duplicate_model_calls,
        "ok": cancelled == 0 and not others and lost == 0 and duplicate_model_calls == 0,
    }


def targets(results: Mapping[str, Any]) -> dict[str, bool | None]:
    """Issue 13's targets, each True/False (None: that part was not run)."""
    main = results.get("sentences_per_s") is not None
    slow = results.get("slow")
    orbit = results.get("orbit")
    return {
        "rate_at_least_90_percent_of_bound": (
            results["sentences_per_s"] >= MIN_SHARE_OF_BOUND * results["bound_sentences_per_s"]
            if main
            else None
        ),
        "p99_within_model_p99_plus_500_ms": (
            results["p99_ms"] <= results["model_p99_ms"] + P99_MARGIN_MS if main else None
        ),
        "nothing_lost_or_duplicated": (
            results["lost"] == 0 and results["duplicated"] == 0 and results["duplicate_model_calls"] == 0
            if main
            else None
        ),
        "no_duplicate_charges": results.get("money_ok"),
        "slow_sentences_do_not_hold_others": slow["comparison"]["within_20_percent"] if slow else None,
        "orbit_every_order_completes": orbit["ok"] if orbit else None,
    }
