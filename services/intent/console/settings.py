"""Optional settings of the console and the ops summary (environment variables prefixed ``YIJU_``)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="YIJU_", extra="ignore")

    metrics_targets: str = ""
    """Where each replica of a service serves metrics, e.g. ``planning=10.0.0.7:9100,planning=10.0.0.8:9100``
    (``host:port`` or a full URL; a name repeats for each replica). Services not named are derived from the
    gRPC targets (see metrics_targets.py)."""
    metrics_discovery: str = ""
    """Headless Services to find every replica by (``name=host:port,...``): each address a name resolves
    to is one replica (the chart sets ``<release>-<service>-metrics:9100``; see metrics_targets.py)."""
    prometheus_url: str = ""
    """Prometheus' base URL (``YIJU_PROMETHEUS_URL``): when set, the ops summary asks its HTTP API
    instead of scraping the replicas (see prometheus_api.py)."""
    prometheus_selector: str = ""
    """Label matchers added to every query, e.g. ``namespace="yiju"`` (several releases, one Prometheus)."""
    prometheus_rate_window: str = "2m"
    """The range of ``rate()``: at least four of Prometheus' scrape intervals."""
    metrics_port_base: int = 0
    """The local platform's first metrics port (``YIJU_METRICS_PORT_BASE``): service i listens on base+i."""
    trace_query_url: str = ""
    """Jaeger or Tempo query API for ``GET /v1/orders/{id}/trace`` (empty: the local span store)."""
    ops_scrape_timeout_s: float = 1.5
