"""bench/latency.png: latency percentiles and throughput against the offered rate."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def latency_png(
    steps: list[dict[str, Any]], path: Path, limit_ms: float, title: str, capacity: float | None = None
) -> bool:
    """Writes the plot; False (and nothing written) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rates = [s["offered_per_s"] for s in steps]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8), sharex=True, height_ratios=(3, 2))
    for key, label, style in (
        ("p50", "p50", "o-"),
        ("p95", "p95", "s-"),
        ("p99", "p99", "^-"),
    ):
        top.plot(
            rates,
            [max(s["latency_ms"][key], 0.1) for s in steps],
            style,
            label=f"{label} (from intended send)",
        )
    top.plot(
        rates,
        [max(s["pipeline_latency_ms"]["p99"], 0.1) for s in steps],
        "v--",
        label="p99 (from intent accepted)",
    )
    top.axhline(limit_ms, color="red", linestyle=":", label=f"{limit_ms:g} ms limit")
    top.set_yscale("log")
    top.set_ylabel("latency to COMPLETED (ms)")
    top.set_title(title)
    top.grid(True, which="both", alpha=0.3)
    top.legend(fontsize=8)
    bottom.plot(rates, rates, ":", color="grey", label="offered")
    bottom.plot(rates, [s["completed_per_s"] for s in steps], "o-", label="completed")
    if capacity:
        bottom.axhline(
            capacity, color="green", linestyle="--", label=f"capacity, backlog drained: {capacity:.0f}/s"
        )
    bottom.set_xlabel("offered load (sentences/s)")
    bottom.set_ylabel("sentences/s")
    bottom.grid(True, alpha=0.3)
    bottom.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
