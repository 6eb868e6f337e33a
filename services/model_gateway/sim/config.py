"""What the simulated Qwen server does: latency, capacity, tool turns and faults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port, chosen at start()
    model: str = "qwen-sim"
    catalog_dir: Path | None = None  # None: the settings' catalog (YIJU_CATALOG_DIR)
    # Service time of one request (one turn): lognormal with this median and 99th percentile.
    p50_ms: float = 1200.0
    p99_ms: float = 6000.0
    slots: int = 256  # requests served at once (vLLM --max-num-seqs); the rest wait in a FIFO queue
    seed: int = 7
    time_scale: float = 1.0  # real sleep = simulated time x time_scale (stats count simulated time)
    # Tool turns, when the request offers the read-only tools.
    search_rate: float = 1.0  # share of sentences whose first turn searches the catalog
    quote_rate: float = 0.0  # share that also quote the plan before answering
    # Faults, per request.
    error_rate: float = 0.0  # HTTP error (one of error_statuses) after the service time
    error_statuses: tuple[int, ...] = (500, 503)
    hang_rate: float = 0.0  # holds its slot for hang_s (or until the client goes away)
    hang_s: float = 600.0
    garbage_rate: float = 0.0  # text that is no tool call
    schema_break_rate: float = 0.0  # tool calls that break the schema (a price argument, bad numbers)
    # Slow sentences: this share (a stable draw per order, else per sentence: latency.SlowShare) takes
    # slow_ms on its first turn instead of the lognormal draw.
    slow_rate: float = 0.0
    slow_ms: float = 30_000.0

    def __post_init__(self) -> None:
        if self.p50_ms <= 0 or self.p99_ms < self.p50_ms:
            raise ValueError("the latency needs 0 < p50_ms <= p99_ms")
        if self.slots < 1:
            raise ValueError("slots must be at least 1")
        if self.time_scale < 0:
            raise ValueError("time_scale must not be negative")
        rates = (self.error_rate, self.hang_rate, self.garbage_rate, self.schema_break_rate)
        if self.slow_ms <= 0:
            raise ValueError("slow_ms must be positive")
        shares = (*rates, self.search_rate, self.quote_rate, self.slow_rate)
        if any(not 0 <= r <= 1 for r in shares) or sum(rates) > 1:
            raise ValueError("rates are shares in [0, 1], and the fault rates add up to at most 1")
