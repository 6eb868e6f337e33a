"""bench/soak.png: latency, CPU, memory and the broker's disk use, minute by minute."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yiju_infra.bench.soak_stats import SUMMARY_KEYS


def soak_png(rows: list[dict[str, Any]], path: Path, title: str) -> bool:
    """Writes the plot; False (and nothing written) when matplotlib is not installed or no minute ran."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return False
    if not rows:
        return False
    minutes = [r["minute"] for r in rows]
    fig, (lat, cpu, mem) = plt.subplots(3, 1, figsize=(9, 10), sharex=True, height_ratios=(3, 2, 2))
    for key, label, style in (
        ("p50_ms", "p50 (from intent accepted)", "o-"),
        ("p99_ms", "p99 (from intent accepted)", "^-"),
        ("e2e_p99_ms", "p99 (from intended send)", "v--"),
    ):
        lat.plot(minutes, [r[key] for r in rows], style, label=label, markersize=4)
    lat.set_ylabel("latency to COMPLETED (ms)")
    lat.set_ylim(bottom=0)
    lat.set_title(title)
    lat.grid(True, alpha=0.3)
    lat.legend(fontsize=8, loc="upper left")

    names = [n for n in rows[-1]["cpu_percent"] if n not in SUMMARY_KEYS]
    for name in names:
        cpu.plot(minutes, [r["cpu_percent"].get(name, 0.0) for r in rows], "-", label=name)
    cpu.plot(minutes, [r["platform_cpu_percent"] for r in rows], "k-", linewidth=2, label="platform")
    cpu.plot(minutes, [r["cpu_percent"].get("others", 0.0) for r in rows], "k:", label="others (not ours)")
    cpu.set_ylabel("CPU (% of one core)")
    cpu.set_ylim(bottom=0)
    cpu.grid(True, alpha=0.3)
    cpu.legend(fontsize=7, ncol=5, loc="upper left")

    for name in rows[-1]["rss_mb"]:
        mem.plot(minutes, [r["rss_mb"].get(name, 0.0) for r in rows], "-", label=f"{name} RSS")
    mem.set_ylabel("RSS (MiB)")
    mem.set_ylim(bottom=0)
    mem.set_xlabel("minute")
    mem.xaxis.set_major_locator(MaxNLocator(integer=True))
    mem.grid(True, alpha=0.3)
    handles, labels = mem.get_legend_handles_labels()
    disk = [r["broker_disk_bytes"] for r in rows]
    if any(d is not None for d in disk):
        twin = mem.twinx()
        twin.plot(minutes, [(d or 0) / 2**20 for d in disk], "k--", linewidth=2, label="broker log on disk")
        twin.set_ylabel("broker log on disk (MiB)")
        twin.set_ylim(bottom=0)
        more_handles, more_labels = twin.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    mem.legend(handles, labels, fontsize=7, ncol=5, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
