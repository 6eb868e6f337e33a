"""bench/model.png: the model benchmark's latencies (yiju_infra.bench.model_bench).

Top left: the main run's CDF of end-to-end latency against the model's own time per order. Top right:
the slow-sentence runs, the others' CDF against the run without slow sentences. Bottom: every completed
order's end-to-end latency over the whole bench, per run, with the kill -9s of the orbit run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

RUN_COLOURS = {
    "capacity": "black",
    "calibration": "grey",
    "main": "tab:blue",
    "slow baseline": "tab:green",
    "slow": "tab:orange",
    "orbit": "tab:purple",
}


def _cdf(axis: Any, values: list[float], label: str, **style: Any) -> None:
    ordered = sorted(values)
    if not ordered:
        return
    n = len(ordered)
    axis.plot(ordered, [(i + 1) / n for i in range(n)], label=f"{label} (n={n})", **style)


def model_png(
    results: dict[str, Any],
    series: dict[str, list[list[float]]],
    model_ms: dict[str, list[float]],
    path: Path,
    title: str,
) -> bool:
    """Writes the plot; False (and nothing written) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig = plt.figure(figsize=(12, 9))
    grid = fig.add_gridspec(2, 2, height_ratios=(1, 1))
    main_ax, slow_ax, time_ax = (
        fig.add_subplot(grid[0, 0]),
        fig.add_subplot(grid[0, 1]),
        fig.add_subplot(grid[1, :]),
    )
    fig.suptitle(title)

    if "main" in series:
        _cdf(main_ax, [ms for _, ms, _ in series["main"]], "end to end", color="tab:blue")
        _cdf(
            main_ax, model_ms.get("main", []), "model (service time per order)", color="black", linestyle="--"
        )
        rate, bound = results.get("sentences_per_s"), results.get("bound_sentences_per_s")
        main_ax.set_title(f"main: {rate}/s sustained, bound {bound}/s", fontsize=10)
    if "slow" in series:
        _cdf(
            slow_ax,
            [ms for _, ms, _ in series.get("slow baseline", [])],
            "no slow sentences",
            color="tab:green",
        )
        _cdf(
            slow_ax,
            [ms for _, ms, slow in series["slow"] if not slow],
            "with 10 % slow: the others",
            color="tab:orange",
        )
        _cdf(
            slow_ax,
            [ms for _, ms, slow in series["slow"] if slow],
            "with 10 % slow: the slow",
            color="tab:red",
            linestyle=":",
        )
        slow_ax.set_title("slow sentences vs the others (end to end)", fontsize=10)
    for axis in (main_ax, slow_ax):
        axis.set_xscale("log")
        axis.set_xlabel("latency (ms)")
        axis.set_ylabel("share of orders")
        axis.grid(True, which="both", alpha=0.3)
        if axis.get_lines():
            axis.legend(fontsize=8, loc="lower right")

    for label, rows in series.items():
        time_ax.scatter(
            [r[0] for r in rows],
            [r[1] for r in rows],
            s=2,
            color=RUN_COLOURS.get(label, "black"),
            label=label,
        )
    orbit = results.get("orbit") or {}
    for kill in orbit.get("kills", []):
        time_ax.axvline(kill["at_s"], color="red", linestyle=":", linewidth=1)
        time_ax.annotate(
            f"kill -9 {kill['process']}",
            (kill["at_s"], 0.98),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            rotation=90,
            va="top",
            ha="right",
            color="red",
        )
    time_ax.set_yscale("log")
    time_ax.set_xlabel("completed at (s since the bench began)")
    time_ax.set_ylabel("end-to-end latency (ms)")
    time_ax.grid(True, which="both", alpha=0.3)
    time_ax.legend(fontsize=8, markerscale=4, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
