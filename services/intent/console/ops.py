"""The operator summary: every service's Prometheus metrics and the subsidy budget, boiled down to one JSON.

The intent service reads its own metrics in-process and scrapes the other services' ``/metrics``. Their
addresses come from ``YIJU_METRICS_TARGETS`` (``name=host:port,...``) where given; otherwise the host of
the service's gRPC target (``YIJU_PLANNING_TARGET``, ...) and a port chosen as the platform does:

- ``YIJU_ENV=local`` (the local platform, ``make run``): service *i* of :data:`LOCAL_ORDER` listens on
  ``YIJU_METRICS_PORT_BASE + i``; without the base, this service's own ``YIJU_METRICS_PORT`` is the base
  (intent is first); without either, ``services.common.service.DEFAULT_METRICS_PORTS``;
- anywhere else (Kubernetes): every pod serves metrics on the same ``YIJU_METRICS_PORT``.

Rates (per second) are computed between scrapes, over a window of up to :data:`RATE_WINDOW_S` seconds.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio.client import Redis

from yiju.common.catalog import Campaign
from yiju.common.service import DEFAULT_METRICS_PORTS
from yiju.common.settings import Settings
from yiju.common.topics import CONSUMER_GROUPS
from yiju.intent.console.settings import ConsoleSettings

LOCAL_ORDER: tuple[str, ...] = ("intent", "planning", "payment", "fulfilment", "model_gateway")
"""The services in the local platform's order (``yiju_infra.local.platform.SERVICES``): metrics ports."""
GRPC_TARGET: dict[str, str] = {
    "planning": "planning",
    "payment": "payment",
    "fulfilment": "fulfilment",
    "model_gateway": "gateway",
}
"""Peer service -> the Settings prefix of its gRPC target, whose host also serves its metrics."""
RATE_WINDOW_S = 15.0
MIN_WINDOW_S = 1.0


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass
class Scrape:
    service: str
    target: str
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None

    @property
    def up(self) -> bool:
        return self.error is None


def parse_metrics(text: str) -> list[Sample]:
    """Every sample of a Prometheus text exposition."""
    return [
        Sample(s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def _explicit_targets(spec: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in spec.split(","):
        name, sep, where = item.strip().partition("=")
        if sep and name.strip() and where.strip():
            out[name.strip()] = _url(where.strip())
    return out


def _url(where: str) -> str:
    if "://" in where:
        return where
    return f"http://{where}/metrics"


def _metrics_port(service: str, settings: Settings, console: ConsoleSettings) -> int:
    if settings.env == "local" or console.metrics_port_base:
        base = console.metrics_port_base or (settings.metrics_port - LOCAL_ORDER.index("intent"))
        if base > 0:
            return base + LOCAL_ORDER.index(service)
        return DEFAULT_METRICS_PORTS[service]
    return settings.metrics_port or DEFAULT_METRICS_PORTS[service]


def metrics_targets(settings: Settings, console: ConsoleSettings) -> dict[str, str]:
    """The ``/metrics`` URL of every other service (see the module docstring)."""
    explicit = _explicit_targets(console.metrics_targets)
    out: dict[str, str] = {}
    for service, grpc_name in GRPC_TARGET.items():
        if service in explicit:
            out[service] = explicit[service]
            continue
        host = settings.target(grpc_name).rsplit(":", 1)[0] or "127.0.0.1"
        out[service] = _url(f"{host}:{_metrics_port(service, settings, console)}")
    return out


# --- arithmetic on samples -------------------------------------------------------------------------------


def _total(samples: Iterable[Sample], name: str, **match: str) -> float:
    return sum(
        s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in match.items())
    )


def _by(samples: Iterable[Sample], name: str, label: str, **match: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for s in samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in match.items()):
            out[s.labels.get(label, "")] += s.value
    return dict(out)


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus' ``histogram_quantile`` over cumulative bucket counts keyed by upper bound."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            width = count - below
            return lower + (bound - lower) * ((rank - below) / width if width else 0.0)
        lower, below = bound, count
    return lower


def _p99_ms(samples: Iterable[Sample], group: str) -> float | None:
    buckets: dict[float, float] = defaultdict(float)
    for s in samples:
        if s.name == "yiju_handler_seconds_bucket" and s.labels.get("group") == group:
            buckets[float(s.labels["le"])] += s.value
    p99 = histogram_quantile(0.99, buckets)
    return None if p99 is None else round(p99 * 1000, 3)


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole > 0 else None


# --- the summary -----------------------------------------------------------------------------------------


@dataclass
class Totals:
    """Counters remembered between scrapes, for rates."""

    at: float
    published: dict[str, float]
    consumed: dict[str, float]
    dead_letters: float
    cache_hits: float
    cache_misses: float


def _rate(now: float, before: float, seconds: float | None) -> float | None:
    if seconds is None:
        return None
    return round(max(now - before, 0.0) / seconds, 3)


def summarise(
    scrapes: Mapping[str, Scrape],
    *,
    budget: dict[str, Any] | None,
    previous: Totals | None,
    now: float,
) -> tuple[dict[str, Any], Totals]:
    """The ops summary from one round of scrapes (pure: no I/O), and the totals to remember."""
    every = [s for scrape in scrapes.values() for s in scrape.samples]
    published = _by(every, "yiju_events_published_total", "topic")
    consumed = _by(every, "yiju_events_consumed_total", "topic", outcome="ok")
    gateway = scrapes["model_gateway"].samples if "model_gateway" in scrapes else []
    intent = scrapes["intent"].samples if "intent" in scrapes else []
    totals = Totals(
        at=now,
        published=published,
        consumed=consumed,
        dead_letters=_total(every, "yiju_dead_letters_total"),
        cache_hits=_total(gateway, "yiju_gateway_cache_hits_total"),
        cache_misses=_total(gateway, "yiju_gateway_cache_misses_total"),
    )
    window = round(now - previous.at, 3) if previous is not None and now - previous.at > 0 else None
    before = previous or totals

    topics = sorted(set(published) | set(consumed))
    throughput = {
        "published_total": int(sum(published.values())),
        "consumed_total": int(sum(consumed.values())),
        "published_per_s": _rate(sum(published.values()), sum(before.published.values()), window),
        "consumed_per_s": _rate(sum(consumed.values()), sum(before.consumed.values()), window),
        "topics": [
            {
                "topic": topic,
                "published_total": int(published.get(topic, 0)),
                "consumed_total": int(consumed.get(topic, 0)),
                "published_per_s": _rate(published.get(topic, 0), before.published.get(topic, 0), window),
                "consumed_per_s": _rate(consumed.get(topic, 0), before.consumed.get(topic, 0), window),
            }
            for topic in topics
        ],
    }
    lag = _by(every, "yiju_consumer_lag", "group")
    handled = _by(every, "yiju_events_consumed_total", "group")
    dlq_by_group = _by(every, "yiju_dead_letters_total", "group")
    groups = [
        {
            "group": g.name,
            "service": g.service,
            "lag": int(lag[g.name]) if g.name in lag else None,
            "handled_total": int(handled.get(g.name, 0)),
            "dead_letters_total": int(dlq_by_group.get(g.name, 0)),
            "dead_letter_topic": g.dead_letter_topic,
            "p99_ms": _p99_ms(every, g.name),
        }
        for g in CONSUMER_GROUPS
    ]
    hits, misses = totals.cache_hits, totals.cache_misses
    window_hits, window_misses = hits - before.cache_hits, misses - before.cache_misses
    batches = _total(gateway, "yiju_gateway_batch_size_count")
    summary = {
        "at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "window_s": window,
        "services": [
            {"name": name, "up": scrape.up, "target": scrape.target, "error": scrape.error}
            for name, scrape in scrapes.items()
        ],
        "throughput": throughput,
        "consumer_groups": groups,
        "dead_letters": {
            "total": int(totals.dead_letters),
            "per_s": _rate(totals.dead_letters, before.dead_letters, window),
            "by_group": {k: int(v) for k, v in dlq_by_group.items()},
            "by_reason": {k: int(v) for k, v in _by(every, "yiju_dead_letters_total", "reason").items()},
        },
        "orders_by_status": {
            k: int(v) for k, v in sorted(_by(intent, "yiju_order_status_total", "status").items())
        },
        "subsidy": budget,
        "gateway": {
            "up": scrapes["model_gateway"].up if "model_gateway" in scrapes else False,
            "cache_hits_total": int(hits),
            "cache_misses_total": int(misses),
            "cache_hit_ratio": _ratio(hits, hits + misses),
            "window_cache_hit_ratio": _ratio(window_hits, window_hits + window_misses) if window else None,
            "requests_total": int(_total(gateway, "yiju_gateway_requests_total")),
            "fallbacks_total": int(_total(gateway, "yiju_gateway_fallbacks_total")),
            "batch_size_avg": _ratio(_total(gateway, "yiju_gateway_batch_size_sum"), batches),
        },
    }
    return summary, totals


class OpsSummary:
    """Scrapes the services and Redis on demand; remembers recent totals to report rates."""

    def __init__(
        self, settings: Settings, console: ConsoleSettings, redis: Redis, campaign: Campaign | None
    ) -> None:
        self.settings = settings
        self.console = console
        self.redis = redis
        self.campaign = campaign
        self.targets = metrics_targets(settings, console)
        self._history: deque[Totals] = deque()
        self._lock = asyncio.Lock()

    async def _scrape(self, client: httpx.AsyncClient, service: str, url: str) -> Scrape:
        try:
            response = await client.get(url)
            response.raise_for_status()
            return Scrape(service, url, parse_metrics(response.text))
        except (httpx.HTTPError, ValueError) as exc:
            return Scrape(service, url, error=f"{type(exc).__name__}: {exc}"[:200])

    async def _budget(self) -> dict[str, Any] | None:
        if self.campaign is None:
            return None
        from yiju.planning.subsidy import budget_key

        info: dict[str, Any] = {
            "campaign": self.campaign.id,
            "name": self.campaign.name,
            "budget_fen": self.campaign.budget_fen,
            "left_fen": None,
            "error": None,
        }
        try:
            raw = await asyncio.wait_for(self.redis.get(budget_key(self.campaign.id)), 2.0)
            info["left_fen"] = int(raw) if raw is not None else None
        except Exception as exc:  # Redis down: the page still shows the services
            info["error"] = f"{type(exc).__name__}: {exc}"[:200]
        return info

    def _baseline(self, now: float) -> Totals | None:
        while self._history and now - self._history[0].at > RATE_WINDOW_S:
            self._history.popleft()
        usable = [t for t in self._history if now - t.at >= MIN_WINDOW_S]
        return usable[0] if usable else None

    async def collect(self) -> dict[str, Any]:
        own = Scrape("intent", "in-process", parse_metrics(generate_latest(REGISTRY).decode()))
        timeout = self.console.ops_scrape_timeout_s
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            peers, budget = await asyncio.gather(
                asyncio.gather(*(self._scrape(client, s, url) for s, url in self.targets.items())),
                self._budget(),
            )
        scrapes = {"intent": own, **{s.service: s for s in peers}}
        async with self._lock:
            now = time.time()
            summary, totals = summarise(scrapes, budget=budget, previous=self._baseline(now), now=now)
            self._history.append(totals)
        return summary
