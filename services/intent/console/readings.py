"""What the ops summary is made of, whichever way it was read (scrapes or Prometheus), and the JSON of it.

Every number is over all replicas of a service: counters are summed, a consumer group's lag is the sum
over its partitions of the largest lag any replica reports for that partition (a replica that lost a
partition in a rebalance may still report its last value; counting it once never double-counts), and
quantiles come from the buckets of every replica together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from yiju.common.topics import CONSUMER_GROUPS


@dataclass(frozen=True, slots=True)
class ServiceState:
    """One service as the summary saw it: how many replicas, how many answered."""

    name: str
    replicas: int
    replicas_up: int
    target: str
    error: str | None = None

    @property
    def up(self) -> bool:
        """Every replica answered (with one down, the numbers are missing its share)."""
        return self.replicas > 0 and self.replicas_up == self.replicas and self.error is None


@dataclass(frozen=True, slots=True)
class Rates:
    """Per-second rates over ``window_s`` (between two summaries, or Prometheus' rate window)."""

    window_s: float
    published_per_s: float
    consumed_per_s: float
    published_per_topic: dict[str, float]
    consumed_per_topic: dict[str, float]
    dead_letters_per_s: float
    window_cache_hit_ratio: float | None


@dataclass
class Readings:
    """Totals over every replica, with rates and p99s where they could be had."""

    source: str
    """``scrape`` (every replica's /metrics) or ``prometheus`` (its HTTP API)."""
    services: list[ServiceState]
    published: dict[str, float] = field(default_factory=dict)
    consumed: dict[str, float] = field(default_factory=dict)
    handled_by_group: dict[str, float] = field(default_factory=dict)
    lag_by_group: dict[str, float] = field(default_factory=dict)
    dead_by_group: dict[str, float] = field(default_factory=dict)
    dead_by_reason: dict[str, float] = field(default_factory=dict)
    orders_by_status: dict[str, float] = field(default_factory=dict)
    p99_s_by_group: dict[str, float] = field(default_factory=dict)
    cache_hits: float = 0.0
    cache_misses: float = 0.0
    gateway_requests: float = 0.0
    gateway_fallbacks: float = 0.0
    batch_size_sum: float = 0.0
    batch_size_count: float = 0.0
    rates: Rates | None = None

    @property
    def dead_letters(self) -> float:
        return sum(self.dead_by_group.values())


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole > 0 else None


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def render(readings: Readings, *, budget: dict[str, Any] | None, now: float) -> dict[str, Any]:
    """The ``GET /v1/ops/summary`` document."""
    r = readings
    rates = r.rates
    published, consumed = r.published, r.consumed
    topics = sorted(set(published) | set(consumed))
    gateway = next((s for s in r.services if s.name == "model_gateway"), None)
    hits, misses = r.cache_hits, r.cache_misses
    return {
        "at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "source": r.source,
        "window_s": round(rates.window_s, 3) if rates else None,
        "services": [
            {
                "name": s.name,
                "up": s.up,
                "replicas": s.replicas,
                "replicas_up": s.replicas_up,
                "target": s.target,
                "error": s.error,
            }
            for s in r.services
        ],
        "throughput": {
            "published_total": int(sum(published.values())),
            "consumed_total": int(sum(consumed.values())),
            "published_per_s": _rate(rates.published_per_s) if rates else None,
            "consumed_per_s": _rate(rates.consumed_per_s) if rates else None,
            "topics": [
                {
                    "topic": topic,
                    "published_total": int(published.get(topic, 0)),
                    "consumed_total": int(consumed.get(topic, 0)),
                    "published_per_s": _rate(rates.published_per_topic.get(topic, 0.0)) if rates else None,
                    "consumed_per_s": _rate(rates.consumed_per_topic.get(topic, 0.0)) if rates else None,
                }
                for topic in topics
            ],
        },
        "consumer_groups": [
            {
                "group": g.name,
                "service": g.service,
                "lag": int(r.lag_by_group[g.name]) if g.name in r.lag_by_group else None,
                "handled_total": int(r.handled_by_group.get(g.name, 0)),
                "dead_letters_total": int(r.dead_by_group.get(g.name, 0)),
                "dead_letter_topic": g.dead_letter_topic,
                "p99_ms": round(r.p99_s_by_group[g.name] * 1000, 3) if g.name in r.p99_s_by_group else None,
            }
            for g in CONSUMER_GROUPS
        ],
        "dead_letters": {
            "total": int(r.dead_letters),
            "per_s": _rate(rates.dead_letters_per_s) if rates else None,
            "by_group": {k: int(v) for k, v in r.dead_by_group.items()},
            "by_reason": {k: int(v) for k, v in r.dead_by_reason.items()},
        },
        "orders_by_status": {k: int(v) for k, v in sorted(r.orders_by_status.items())},
        "subsidy": budget,
        "gateway": {
            "up": gateway.up if gateway else False,
            "cache_hits_total": int(hits),
            "cache_misses_total": int(misses),
            "cache_hit_ratio": _ratio(hits, hits + misses),
            "window_cache_hit_ratio": rates.window_cache_hit_ratio if rates else None,
            "requests_total": int(r.gateway_requests),
            "fallbacks_total": int(r.gateway_fallbacks),
            "batch_size_avg": _ratio(r.batch_size_sum, r.batch_size_count),
        },
    }
