"""Prometheus metrics of the model gateway (served on the service's metrics port).

Cache hit ratio: rate(yiju_gateway_cache_hits_total) / (rate(..._hits_total) + rate(..._misses_total)).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter(
    "yiju_gateway_requests_total",
    "Sentences answered by the gateway, by RPC and outcome",
    ["method", "outcome"],
)
RATE_LIMITED = Counter("yiju_gateway_rate_limited_total", "Calls refused by a tenant limit", ["kind"])
BATCH_SIZE = Histogram(
    "yiju_gateway_batch_size",
    "Sentences per micro-batch sent to the backend chain",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
QUEUE_WAIT = Histogram(
    "yiju_gateway_queue_wait_seconds", "Time a sentence waited in the micro-batcher", buckets=_LATENCY
)
CACHE_HITS = Counter("yiju_gateway_cache_hits_total", "Answers served from the Redis cache")
CACHE_MISSES = Counter("yiju_gateway_cache_misses_total", "Cache look-ups that found nothing")
CACHE_ERRORS = Counter("yiju_gateway_cache_errors_total", "Cache reads or writes that failed (served anyway)")
SINGLEFLIGHT_SHARED = Counter(
    "yiju_gateway_singleflight_shared_total", "Sentences answered by joining an identical call in flight"
)
BACKEND_SECONDS = Histogram(
    "yiju_gateway_backend_seconds",
    "Duration of one backend call (a batch)",
    ["backend", "outcome"],
    buckets=_LATENCY,
)
INVALID_OUTPUTS = Counter(
    "yiju_gateway_invalid_outputs_total", "Model answers refused by the tool schema", ["backend"]
)
FALLBACKS = Counter(
    "yiju_gateway_fallbacks_total",
    "Sentences passed on to the next backend",
    ["from_backend", "to_backend", "reason"],
)
TOKENS = Counter("yiju_gateway_tokens_total", "Model tokens used (prompt and completion)", ["backend"])
BREAKER_STATE = Gauge(
    "yiju_gateway_breaker_state",
    "Circuit breaker per model backend: 0 closed, 1 open, 2 half-open",
    ["backend"],
)
TURNS = Histogram(
    "yiju_gateway_model_turns",
    "Model calls per sentence (tool-calling turns included)",
    ["backend"],
    buckets=(1, 2, 3, 4, 5, 6, 8),
)
TOOL_CALLS = Counter(
    "yiju_gateway_tool_calls_total",
    "Read-only tool calls a model made, by tool and outcome (ok, refused)",
    ["tool", "outcome"],
)
