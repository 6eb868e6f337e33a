"""The ops summary from Prometheus' HTTP API (``YIJU_PROMETHEUS_URL``): every replica Prometheus scrapes.

Each number is one instant query (``GET /api/v1/query``), all sent at once: sums ``by`` the label the page
shows, rates over ``YIJU_PROMETHEUS_RATE_WINDOW``, and ``histogram_quantile`` over the buckets of every
replica, which Prometheus computes. ``YIJU_PROMETHEUS_SELECTOR`` (label matchers such as
``namespace="yiju"``) is added to every series selector, so that one Prometheus can serve several
releases. A service's replicas are the ``up`` series of its scrape job: the job whose name is the
service's (``model-gateway`` or ``model_gateway``) or ends in ``-<service>`` (the chart's Services,
``<release>-planning``).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx

from yiju.intent.console.metrics_targets import LOCAL_ORDER
from yiju.intent.console.readings import Rates, Readings, ServiceState
from yiju.intent.console.settings import ConsoleSettings

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


class PrometheusError(Exception):
    """Prometheus could not be asked, or refused a query."""


def window_seconds(window: str) -> float:
    """``2m`` -> 120.0 (a Prometheus duration of one unit)."""
    match = _DURATION.match(window.strip())
    if not match:
        raise ValueError(f"YIJU_PROMETHEUS_RATE_WINDOW: {window!r} is not a duration such as 2m or 90s")
    return int(match[1]) * _SECONDS[match[2]]


def selector(metric: str, matchers: str, *extra: str) -> str:
    """``metric{matchers, extra...}``."""
    inner = ", ".join(m for m in (matchers.strip().strip("{}").strip(), *extra) if m)
    return f"{metric}{{{inner}}}" if inner else metric


def job_service(job: str) -> str | None:
    """The service a scrape job belongs to (see the module docstring), or None."""
    name = job.replace("_", "-")
    for service in LOCAL_ORDER:
        dashed = service.replace("_", "-")
        if name == dashed or name.endswith(f"-{dashed}"):
            return service
    return None


def queries(matchers: str, window: str) -> dict[str, str]:
    """Every query the summary asks, by what it answers."""

    def s(metric: str, *extra: str) -> str:
        return selector(metric, matchers, *extra)

    ok = s("yiju_events_consumed_total", 'outcome="ok"')

    return {
        "replicas": f"count by (job) ({s('up')})",
        "replicas_up": f"sum by (job) ({s('up')})",
        "published": f"sum by (topic) ({s('yiju_events_published_total')})",
        "consumed": f"sum by (topic) ({ok})",
        "handled": f"sum by (group) ({s('yiju_events_consumed_total')})",
        "lag": f"sum by (group) (max by (group, topic, partition) ({s('yiju_consumer_lag')}))",
        "dead_by_group": f"sum by (group) ({s('yiju_dead_letters_total')})",
        "dead_by_reason": f"sum by (reason) ({s('yiju_dead_letters_total')})",
        "orders": f"sum by (status) ({s('yiju_order_status_total')})",
        "p99": f"histogram_quantile(0.99, sum by (group, le) ({s('yiju_handler_seconds_bucket')}))",
        "cache_hits": f"sum({s('yiju_gateway_cache_hits_total')})",
        "cache_misses": f"sum({s('yiju_gateway_cache_misses_total')})",
        "requests": f"sum({s('yiju_gateway_requests_total')})",
        "fallbacks": f"sum({s('yiju_gateway_fallbacks_total')})",
        "batch_sum": f"sum({s('yiju_gateway_batch_size_sum')})",
        "batch_count": f"sum({s('yiju_gateway_batch_size_count')})",
        "published_rate": f"sum by (topic) (rate({s('yiju_events_published_total')}[{window}]))",
        "consumed_rate": f"sum by (topic) (rate({ok}[{window}]))",
        "dead_rate": f"sum(rate({s('yiju_dead_letters_total')}[{window}]))",
        "cache_hits_rate": f"sum(rate({s('yiju_gateway_cache_hits_total')}[{window}]))",
        "cache_misses_rate": f"sum(rate({s('yiju_gateway_cache_misses_total')}[{window}]))",
    }


def _vector(answer: Any, query: str) -> dict[str, float]:
    """An instant vector keyed by its one grouping label's value ("" for a plain sum); NaN is left out."""
    if not isinstance(answer, dict) or answer.get("status") != "success":
        error = answer.get("error") if isinstance(answer, dict) else None
        raise PrometheusError(f"Prometheus refused {query!r}: {error or answer!r}"[:300])
    data = answer.get("data") or {}
    if data.get("resultType") != "vector":
        raise PrometheusError(f"{query!r} answered a {data.get('resultType')}, not a vector")
    out: dict[str, float] = {}
    for row in data.get("result") or []:
        labels = row.get("metric") or {}
        value = float(row["value"][1])
        if value == value:  # NaN: histogram_quantile of an empty histogram
            out[next(iter(labels.values()), "")] = value
    return out


class PrometheusReader:
    """Asks Prometheus every query of :func:`queries` and turns the answers into :class:`Readings`."""

    def __init__(
        self, console: ConsoleSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.base = console.prometheus_url.rstrip("/")
        self.window = console.prometheus_rate_window
        self.window_s = window_seconds(self.window)
        self.queries = queries(console.prometheus_selector, self.window)
        self.timeout = console.ops_scrape_timeout_s
        self.transport = transport

    async def _ask(self, client: httpx.AsyncClient, query: str) -> dict[str, float]:
        try:
            response = await client.get(f"{self.base}/api/v1/query", params={"query": query})
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise PrometheusError(f"cannot query {self.base}: {type(exc).__name__}: {exc}"[:300]) from exc
        return _vector(answer, query)

    async def answers(self) -> dict[str, dict[str, float]]:
        """Every query's vector, by name (one PrometheusError if any failed)."""
        names = list(self.queries)
        options: dict[str, Any] = {"timeout": self.timeout, "trust_env": False, "transport": self.transport}
        async with httpx.AsyncClient(**options) as client:
            results = await asyncio.gather(*(self._ask(client, self.queries[n]) for n in names))
        return dict(zip(names, results, strict=True))

    def _services(self, replicas: dict[str, float], up: dict[str, float]) -> list[ServiceState]:
        jobs: dict[str, list[str]] = {}
        for job in replicas:
            service = job_service(job)
            if service is not None:
                jobs.setdefault(service, []).append(job)
        states = []
        for service in LOCAL_ORDER:
            names = jobs.get(service, [])
            count = int(sum(replicas[j] for j in names))
            answered = int(sum(up.get(j, 0.0) for j in names))
            target = f"{self.base} job {', '.join(names)}" if names else self.base
            error = None
            if not names:
                error = "Prometheus scrapes no job of this service"
            elif answered < count:
                error = f"{count - answered} of {count} replicas down (Prometheus up == 0)"
            states.append(ServiceState(service, count, answered, target, error))
        return states

    async def read(self) -> Readings:
        try:
            a = await self.answers()
        except PrometheusError as exc:
            return Readings(
                source="prometheus",
                services=[ServiceState(s, 0, 0, self.base, str(exc)) for s in LOCAL_ORDER],
            )

        def one(name: str) -> float:
            return a[name].get("", 0.0)

        hits_rate, misses_rate = one("cache_hits_rate"), one("cache_misses_rate")
        return Readings(
            source="prometheus",
            services=self._services(a["replicas"], a["replicas_up"]),
            published=a["published"],
            consumed=a["consumed"],
            handled_by_group=a["handled"],
            lag_by_group=a["lag"],
            dead_by_group=a["dead_by_group"],
            dead_by_reason=a["dead_by_reason"],
            orders_by_status=a["orders"],
            p99_s_by_group=a["p99"],
            cache_hits=one("cache_hits"),
            cache_misses=one("cache_misses"),
            gateway_requests=one("requests"),
            gateway_fallbacks=one("fallbacks"),
            batch_size_sum=one("batch_sum"),
            batch_size_count=one("batch_count"),
            rates=Rates(
                window_s=self.window_s,
                published_per_s=sum(a["published_rate"].values()),
                consumed_per_s=sum(a["consumed_rate"].values()),
                published_per_topic=a["published_rate"],
                consumed_per_topic=a["consumed_rate"],
                dead_letters_per_s=one("dead_rate"),
                window_cache_hit_ratio=(
                    round(hits_rate / (hits_rate + misses_rate), 4) if hits_rate + misses_rate > 0 else None
                ),
            ),
        )
