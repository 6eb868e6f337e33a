"""Optional settings of the console and the ops summary (environment variables prefixed ``YIJU_``)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="YIJU_", extra="ignore")

    metrics_targets: str = ""
    """Where each service's Prometheus endpoint is, e.g. ``planning=planning:9100,payment=payment:9100``
    (``host:port`` or a full URL). Services not named are derived from the gRPC targets (see ops.py)."""
    metrics_port_base: int = 0
    """The local platform's first metrics port (``YIJU_METRICS_PORT_BASE``): service i listens on base+i."""
    trace_query_url: str = ""
    """Jaeger or Tempo query API for ``GET /v1/orders/{id}/trace`` (empty: the local span store)."""
    ops_scrape_timeout_s: float = 1.5
