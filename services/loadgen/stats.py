"""Latency percentiles and a sliding window for live figures."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

PERCENTILES = (50, 90, 95, 99, 99.9)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def summarize(values: Sequence[float]) -> dict[str, float]:
    """p50 ... p99.9, mean and max of `values` (milliseconds in, milliseconds out, rounded to 0.1)."""
    ordered = sorted(values)
    out = {f"p{p:g}".replace(".", "_"): round(percentile(ordered, p), 1) for p in PERCENTILES}
    out["mean"] = round(sum(ordered) / len(ordered), 1) if ordered else 0.0
    out["max"] = round(ordered[-1], 1) if ordered else 0.0
    return out


class Window:
    """Values seen in the last `span_s` seconds (for the progress display)."""

    def __init__(self, span_s: float = 5.0) -> None:
        self.span_s = span_s
        self._items: deque[tuple[float, float]] = deque()

    def add(self, now: float, value: float) -> None:
        self._items.append((now, value))

    def _trim(self, now: float) -> None:
        while self._items and self._items[0][0] < now - self.span_s:
            self._items.popleft()

    def percentile(self, now: float, p: float) -> float:
        self._trim(now)
        return percentile(sorted(v for _, v in self._items), p)

    def rate(self, now: float) -> float:
        self._trim(now)
        return len(self._items) / self.span_s
