"""Prometheus metrics shared by every service, served on the service's metrics port."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

EVENTS_CONSUMED = Counter(
    "yiju_events_consumed_total", "Records handled, by outcome", ["group", "topic", "outcome"]
)
EVENTS_PUBLISHED = Counter("yiju_events_published_total", "Events published", ["topic"])
DEAD_LETTERS = Counter("yiju_dead_letters_total", "Records moved to a dead-letter topic", ["group", "reason"])
HANDLER_SECONDS = Histogram(
    "yiju_handler_seconds",
    "Time to handle one record",
    ["group", "topic"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
BATCH_SIZE = Histogram(
    "yiju_consumer_batch_size",
    "Records per consumed batch",
    ["group"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
CONSUMER_LAG = Gauge(
    "yiju_consumer_lag", "High watermark minus next offset, per partition", ["group", "topic", "partition"]
)
OFFSET_COMMITS = Counter(
    "yiju_offset_commits_total",
    "Offset commits sent by the batch consumers (yiju.common.offset_commits), by outcome",
    ["group", "outcome"],
)
ORDERS_BY_STATUS = Counter("yiju_order_status_total", "Order status transitions applied", ["status"])
SUBSIDY_BUDGET_LEFT = Gauge("yiju_subsidy_budget_left_fen", "Campaign budget left", ["campaign"])
REDIS_ROUND_TRIPS = Counter(
    "yiju_redis_round_trips_total", "Requests written to Redis (a pipeline is one), by the consumers' client"
)
REDIS_COMMANDS = Counter("yiju_redis_commands_total", "Commands sent to Redis (a script call is one)")


def serve_metrics(port: int, host: str = "0.0.0.0") -> None:
    if port > 0:
        start_http_server(port, addr=host)
