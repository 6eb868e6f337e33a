"""The figures of `make soak`, computed from what the load generator tracked and the resources sampled at
every minute boundary. Pure: no clock, no I/O (tests/unit/test_soak.py).

A sentence belongs to the minute of its intended send time, so every sentence is counted in exactly one
minute. Latency has the bench's two bases: from intent accepted to COMPLETED (the headline, as
`make bench` reports it) and from the intended send time (open loop, "e2e"). Drift compares the p99 of
all sentences of the first window of minutes with that of the last window.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from yiju.loadgen.runner import summarize_tracks
from yiju.loadgen.stats import percentile
from yiju.loadgen.watcher import COMPLETED, Track
from yiju_infra.bench.cpu import CpuSample, usage

MINUTE_MS = 60_000.0
WINDOW_MINUTES = 5  # first_5min_p99_ms / last_5min_p99_ms
TARGET_DRIFT = 0.20  # the last window's p99 within 20 % of the first window's, either way
LOADGEN = "loadgen"  # the load generator's own process in CPU and RSS samples
SUMMARY_KEYS = ("all ours", "machine", "others")  # what cpu.usage adds beside the processes


@dataclass
class ResourceSample:
    """What was measured at one minute boundary: CPU seconds so far and RSS of every process (the load
    generator as "loadgen"), and the broker log's disk use (None when it has no log directory here)."""

    cpu: CpuSample
    rss_bytes: dict[str, int] = field(default_factory=dict)
    broker_disk_bytes: int | None = None


def window_minutes(minutes: int, preferred: int = WINDOW_MINUTES) -> int:
    """Minutes in the first and in the last window: `preferred`, but at most half the run (at least 1), so
    that the two windows never overlap on a short run."""
    return max(1, min(preferred, minutes // 2))


def bucket_by_minute(tracks: Sequence[Track], start_ms: float, minutes: int) -> list[list[Track]]:
    """The tracks of each minute of the run, by intended send time (a send scheduled at the very end of
    the last minute stays in it)."""
    buckets: list[list[Track]] = [[] for _ in range(minutes)]
    if minutes <= 0:
        return buckets
    for track in tracks:
        index = int((track.intended_ms - start_ms) // MINUTE_MS)
        buckets[min(max(index, 0), minutes - 1)].append(track)
    return buckets


def accepted_latencies(tracks: Sequence[Track]) -> list[float]:
    """Milliseconds from intent accepted to COMPLETED, of the completed tracks."""
    return [t.done_ms - t.accepted_ms for t in tracks if t.status == COMPLETED and t.accepted_ms]


def e2e_latencies(tracks: Sequence[Track]) -> list[float]:
    """Milliseconds from the intended send time to COMPLETED, of the completed tracks."""
    return [t.done_ms - t.intended_ms for t in tracks if t.status == COMPLETED]


def p99(values: Sequence[float]) -> float | None:
    """Nearest-rank p99 (as every bench figure), rounded to 0.1 ms; None without values."""
    return round(percentile(sorted(values), 99), 1) if values else None


def window_p99(
    buckets: Sequence[Sequence[Track]], first: int, count: int, *, e2e: bool = False
) -> float | None:
    """p99 of every sentence of minutes [first, first + count), pooled (not an average of minutes)."""
    tracks = [t for bucket in buckets[first : first + count] for t in bucket]
    return p99(e2e_latencies(tracks) if e2e else accepted_latencies(tracks))


def drift(first: float | None, last: float | None) -> float | None:
    """last / first - 1 (0.25: the last window's p99 is 25 % higher); None when either is missing."""
    if first is None or last is None or first <= 0:
        return None
    return round(last / first - 1, 4)


def target_met(change: float | None, tolerance: float = TARGET_DRIFT) -> bool:
    """The last window's p99 is within `tolerance` of the first window's, either way: a platform that is
    steady over time has the same p99 at the end as at the start. (Slower is the degradation a soak looks
    for; much faster means the first window was not steady state, e.g. still warming up or sharing the
    machine, so the comparison says nothing either.) The unmeasured warm-up keeps start-up out of it."""
    return change is not None and abs(change) <= tolerance


def platform_cpu_percent(cpu_percent: dict[str, float]) -> float:
    """CPU of the platform's processes (broker, Redis, services) in % of a core: not the load generator,
    not the machine summaries."""
    return round(sum(v for k, v in cpu_percent.items() if k != LOADGEN and k not in SUMMARY_KEYS), 1)


def platform_cpu_seconds(before: CpuSample, after: CpuSample) -> float:
    """CPU seconds the platform's processes used between two samples (a restarted process counts from 0)."""
    return sum(
        max(used - before.processes.get(name, used), 0.0)
        for name, used in after.processes.items()
        if name != LOADGEN
    )


def cpu_ms_per_sentence(cpu_seconds: float, completed: int) -> float | None:
    """CPU milliseconds per completed sentence; None when nothing completed."""
    return round(cpu_seconds * 1000 / completed, 3) if completed else None


def minute_row(
    index: int,
    tracks: Sequence[Track],
    start_ms: float,
    before: ResourceSample,
    after: ResourceSample,
    *,
    final: bool,
) -> dict[str, Any]:
    """One minute of the soak: its sentences (offered, completed, lost or still unsettled, latency) and the
    resources between its two boundary samples. `final`: after the last drain, unsettled means lost."""
    lo = start_ms + index * MINUTE_MS
    summary = summarize_tracks(
        list(tracks),
        label=f"minute {index + 1}",
        duration_s=MINUTE_MS / 1000,
        window=(lo, lo + MINUTE_MS),
        send_errors=Counter(),
        final=final,
    )
    cpu_percent = usage(before.cpu, after.cpu)
    seconds = after.cpu.at - before.cpu.at
    platform = platform_cpu_percent(cpu_percent)
    return {
        "minute": index + 1,
        "offered": summary["offered"],
        "completed": summary["completed"],
        "lost": summary["lost"],
        "unsettled": summary["unsettled"],
        "failed": summary["failed"],
        "duplicated": summary["duplicated"],
        "other_statuses": {k: v for k, v in summary["statuses"].items() if k != COMPLETED},
        "p50_ms": summary["pipeline_latency_ms"]["p50"],
        "p99_ms": summary["pipeline_latency_ms"]["p99"],
        "e2e_p50_ms": summary["latency_ms"]["p50"],
        "e2e_p99_ms": summary["latency_ms"]["p99"],
        "cpu_percent": cpu_percent,
        "platform_cpu_percent": platform,
        "cpu_ms_per_sentence": cpu_ms_per_sentence(platform / 100 * seconds, summary["completed"]),
        "rss_mb": {name: round(b / 2**20, 1) for name, b in after.rss_bytes.items()},
        "broker_disk_bytes": after.broker_disk_bytes,
    }


def minute_rows(
    buckets: Sequence[Sequence[Track]], start_ms: float, samples: Sequence[ResourceSample], *, final: bool
) -> list[dict[str, Any]]:
    """Every minute that has both boundary samples (samples[0] is taken when sending starts)."""
    count = min(len(buckets), len(samples) - 1)
    return [
        minute_row(i, buckets[i], start_ms, samples[i], samples[i + 1], final=final) for i in range(count)
    ]


def headline(
    buckets: Sequence[Sequence[Track]], samples: Sequence[ResourceSample], minutes: int
) -> dict[str, Any]:
    """The top-level figures: the first and last window's p99 (both latency bases), the drift, whether the
    target was met, and the platform's CPU per completed sentence over the whole run."""
    window = window_minutes(minutes)
    last_first = max(minutes - window, 0)
    first_p99, last_p99 = window_p99(buckets, 0, window), window_p99(buckets, last_first, window)
    first_e2e = window_p99(buckets, 0, window, e2e=True)
    last_e2e = window_p99(buckets, last_first, window, e2e=True)
    change = drift(first_p99, last_p99)
    completed = sum(1 for bucket in buckets for t in bucket if t.status == COMPLETED)
    platform_s = platform_cpu_seconds(samples[0].cpu, samples[-1].cpu) if len(samples) > 1 else 0.0
    with_loadgen_s = platform_s
    if len(samples) > 1:
        loadgen = samples[-1].cpu.processes.get(LOADGEN, 0.0) - samples[0].cpu.processes.get(LOADGEN, 0.0)
        with_loadgen_s += max(loadgen, 0.0)
    return {
        "window_minutes": window,
        "first_5min_p99_ms": first_p99,
        "last_5min_p99_ms": last_p99,
        "p99_drift": change,
        "target_met": target_met(change),
        "first_5min_e2e_p99_ms": first_e2e,
        "last_5min_e2e_p99_ms": last_e2e,
        "e2e_p99_drift": drift(first_e2e, last_e2e),
        "cpu_ms_per_sentence": cpu_ms_per_sentence(platform_s, completed),
        "cpu_ms_per_sentence_with_loadgen": cpu_ms_per_sentence(with_loadgen_s, completed),
    }
