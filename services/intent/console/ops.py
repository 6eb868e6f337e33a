"""The operator summary: every replica of every service, and the subsidy budget, boiled down to one JSON.

Two ways to read the services, both over **every replica** (see :mod:`yiju.intent.console.readings`):

- ``YIJU_PROMETHEUS_URL`` set: Prometheus' HTTP API (:mod:`yiju.intent.console.prometheus_api`) answers
  sums, rates over ``YIJU_PROMETHEUS_RATE_WINDOW`` and ``histogram_quantile`` itself;
- otherwise each replica's ``/metrics`` is scraped (where they are: :mod:`.metrics_targets`), counters are
  summed and histogram buckets merged across replicas before the p99 is computed here, and rates are
  taken between summaries, over a window of up to :data:`RATE_WINDOW_S` seconds.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio.client import Redis

from yiju.common.catalog import Campaign
from yiju.common.settings import Settings
from yiju.intent.console.metrics_targets import (
    IN_PROCESS,
    LOCAL_ORDER,
    Discovered,
    ReplicaTargets,
    metrics_targets,
)
from yiju.intent.console.prometheus_api import PrometheusReader
from yiju.intent.console.readings import Rates, Readings, ServiceState, render
from yiju.intent.console.settings import ConsoleSettings

__all__ = [
    "LOCAL_ORDER",
    "OpsSummary",
    "Sample",
    "Scrape",
    "histogram_quantile",
    "merge_replicas",
    "metrics_targets",
    "summarise",
]
RATE_WINDOW_S = 15.0
MIN_WINDOW_S = 1.0


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass
class Scrape:
    """One service's samples: from one replica, or every replica's together (:func:`merge_replicas`)."""

    service: str
    target: str
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None
    replicas: int = 1
    replicas_up: int | None = None

    @property
    def up(self) -> bool:
        return self.error is None

    def state(self) -> ServiceState:
        answered = self.replicas_up if self.replicas_up is not None else (1 if self.up else 0)
        return ServiceState(self.service, self.replicas, answered, self.target, self.error)


def parse_metrics(text: str) -> list[Sample]:
    """Every sample of a Prometheus text exposition."""
    return [
        Sample(s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def merge_replicas(service: str, scrapes: list[Scrape]) -> Scrape:
    """One service's replicas as one scrape: every sample of each (sums then run over all of them)."""
    failed = [s for s in scrapes if s.error is not None]
    error = None
    if not scrapes:
        error = "no replica found"
    elif failed:
        error = f"{len(failed)} of {len(scrapes)} replicas did not answer: " + "; ".join(
            f"{s.target}: {s.error}" for s in failed
        )
    return Scrape(
        service,
        ", ".join(s.target for s in scrapes),
        [sample for s in scrapes for sample in s.samples],
        error[:500] if error else None,
        replicas=len(scrapes),
        replicas_up=len(scrapes) - len(failed),
    )


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


def _lag_by_group(samples: Iterable[Sample]) -> dict[str, float]:
    """Per group, the sum over partitions of the largest lag reported for each (see readings.py)."""
    per_partition: dict[tuple[str, str, str], float] = {}
    for s in samples:
        if s.name == "yiju_consumer_lag":
            key = (s.labels.get("group", ""), s.labels.get("topic", ""), s.labels.get("partition", ""))
            per_partition[key] = max(per_partition.get(key, 0.0), s.value)
    out: dict[str, float] = defaultdict(float)
    for (group, _, _), lag in per_partition.items():
        out[group] += lag
    return dict(out)


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus' ``histogram_quantile`` over cumulative bucket counts keyed by upper bound (only for
    scrapes: with ``YIJU_PROMETHEUS_URL`` Prometheus computes it)."""
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


def _p99_by_group(samples: Iterable[Sample]) -> dict[str, float]:
    """Every replica's buckets of a group added up per bound, then the quantile over the sum."""
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for s in samples:
        if s.name == "yiju_handler_seconds_bucket":
            buckets[s.labels.get("group", "")][float(s.labels["le"])] += s.value
    out: dict[str, float] = {}
    for group, counts in buckets.items():
        p99 = histogram_quantile(0.99, counts)
        if p99 is not None:
            out[group] = p99
    return out


# --- the summary from scrapes ----------------------------------------------------------------------------


@dataclass
class Totals:
    """Counters remembered between scrapes, for rates."""

    at: float
    published: dict[str, float]
    consumed: dict[str, float]
    dead_letters: float
    cache_hits: float
    cache_misses: float


def _delta_rate(now: float, before: float, seconds: float) -> float:
    return max(now - before, 0.0) / seconds


def readings_from_scrapes(
    scrapes: Mapping[str, Scrape], *, previous: Totals | None, now: float
) -> tuple[Readings, Totals]:
    """Readings from one round of scrapes (each service's replicas merged), and the totals to remember."""
    every = [s for scrape in scrapes.values() for s in scrape.samples]
    gateway = scrapes["model_gateway"].samples if "model_gateway" in scrapes else []
    intent = scrapes["intent"].samples if "intent" in scrapes else []
    readings = Readings(
        source="scrape",
        services=[scrape.state() for scrape in scrapes.values()],
        published=_by(every, "yiju_events_published_total", "topic"),
        consumed=_by(every, "yiju_events_consumed_total", "topic", outcome="ok"),
        handled_by_group=_by(every, "yiju_events_consumed_total", "group"),
        lag_by_group=_lag_by_group(every),
        dead_by_group=_by(every, "yiju_dead_letters_total", "group"),
        dead_by_reason=_by(every, "yiju_dead_letters_total", "reason"),
        orders_by_status=_by(intent, "yiju_order_status_total", "status"),
        p99_s_by_group=_p99_by_group(every),
        cache_hits=_total(gateway, "yiju_gateway_cache_hits_total"),
        cache_misses=_total(gateway, "yiju_gateway_cache_misses_total"),
        gateway_requests=_total(gateway, "yiju_gateway_requests_total"),
        gateway_fallbacks=_total(gateway, "yiju_gateway_fallbacks_total"),
        batch_size_sum=_total(gateway, "yiju_gateway_batch_size_sum"),
        batch_size_count=_total(gateway, "yiju_gateway_batch_size_count"),
    )
    totals = Totals(
        at=now,
        published=readings.published,
        consumed=readings.consumed,
        dead_letters=readings.dead_letters,
        cache_hits=readings.cache_hits,
        cache_misses=readings.cache_misses,
    )
    if previous is not None and now - previous.at > 0:
        window = round(now - previous.at, 3)
        hits, misses = totals.cache_hits - previous.cache_hits, totals.cache_misses - previous.cache_misses
        published, consumed = sum(totals.published.values()), sum(totals.consumed.values())
        readings.rates = Rates(
            window_s=window,
            published_per_s=_delta_rate(published, sum(previous.published.values()), window),
            consumed_per_s=_delta_rate(consumed, sum(previous.consumed.values()), window),
            published_per_topic={
                t: _delta_rate(v, previous.published.get(t, 0.0), window) for t, v in totals.published.items()
            },
            consumed_per_topic={
                t: _delta_rate(v, previous.consumed.get(t, 0.0), window) for t, v in totals.consumed.items()
            },
            dead_letters_per_s=_delta_rate(totals.dead_letters, previous.dead_letters, window),
            window_cache_hit_ratio=round(hits / (hits + misses), 4) if hits + misses > 0 else None,
        )
    return readings, totals


def summarise(
    scrapes: Mapping[str, Scrape],
    *,
    budget: dict[str, Any] | None,
    previous: Totals | None,
    now: float,
) -> tuple[dict[str, Any], Totals]:
    """The ops summary from one round of scrapes (pure: no I/O), and the totals to remember."""
    readings, totals = readings_from_scrapes(scrapes, previous=previous, now=now)
    return render(readings, budget=budget, now=now), totals


# --- the service -----------------------------------------------------------------------------------------


class OpsSummary:
    """Reads every replica (scrapes or Prometheus) and Redis on demand; remembers recent totals for the
    scrapes' rates."""

    def __init__(
        self,
        settings: Settings,
        console: ConsoleSettings,
        redis: Redis,
        campaign: Campaign | None,
        *,
        targets: ReplicaTargets | None = None,
    ) -> None:
        self.settings = settings
        self.console = console
        self.redis = redis
        self.campaign = campaign
        self.targets = targets or ReplicaTargets(settings, console)
        self.prometheus = PrometheusReader(console) if console.prometheus_url else None
        self._history: deque[Totals] = deque()
        self._lock = asyncio.Lock()

    async def _scrape(self, client: httpx.AsyncClient, service: str, url: str) -> Scrape:
        if url == IN_PROCESS:
            return Scrape(service, url, parse_metrics(generate_latest(REGISTRY).decode()))
        try:
            response = await client.get(url)
            response.raise_for_status()
            return Scrape(service, url, parse_metrics(response.text))
        except (httpx.HTTPError, ValueError) as exc:
            return Scrape(service, url, error=f"{type(exc).__name__}: {exc}"[:200])

    async def _scrape_service(self, client: httpx.AsyncClient, service: str, found: Discovered) -> Scrape:
        if found.error is not None:
            return Scrape(service, "", error=found.error, replicas=0, replicas_up=0)
        replicas = await asyncio.gather(*(self._scrape(client, service, url) for url in found.urls))
        return merge_replicas(service, list(replicas))

    async def scrape_all(self) -> dict[str, Scrape]:
        """Every replica of every service, merged per service."""
        found = await self.targets.current()
        timeout = self.console.ops_scrape_timeout_s
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            merged = await asyncio.gather(
                *(self._scrape_service(client, service, where) for service, where in found.items())
            )
        return {scrape.service: scrape for scrape in merged}

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
        if self.prometheus is not None:
            readings, budget = await asyncio.gather(self.prometheus.read(), self._budget())
            return render(readings, budget=budget, now=time.time())
        scrapes, budget = await asyncio.gather(self.scrape_all(), self._budget())
        async with self._lock:
            now = time.time()
            summary, totals = summarise(scrapes, budget=budget, previous=self._baseline(now), now=now)
            self._history.append(totals)
        return summary
