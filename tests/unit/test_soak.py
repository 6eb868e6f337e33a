"""`make soak`'s arithmetic: sentences by minute, the first and last windows, drift and the target, CPU."""

from __future__ import annotations

import pytest

from yiju.loadgen.watcher import COMPLETED, Track
from yiju_infra.bench.cpu import CpuSample
from yiju_infra.bench.soak_stats import (
    MINUTE_MS,
    ResourceSample,
    bucket_by_minute,
    cpu_ms_per_sentence,
    drift,
    headline,
    minute_row,
    minute_rows,
    platform_cpu_percent,
    platform_cpu_seconds,
    target_met,
    window_minutes,
    window_p99,
)

START = 1_000_000.0


def completed(at_s: float, latency_ms: float, accept_ms: float = 10.0, key: str = "") -> Track:
    """A sentence intended at START + at_s, accepted `accept_ms` later, COMPLETED `latency_ms` after that."""
    intended = START + at_s * 1000
    track = Track(key or f"k-{at_s}-{latency_ms}", "u", 1, intended)
    track.accepted_ms = intended + accept_ms
    track.done_ms = track.accepted_ms + latency_ms
    track.status = COMPLETED
    track.order_id = f"o-{track.key}"
    return track


def pending(at_s: float) -> Track:
    return Track(f"p-{at_s}", "u", 1, START + at_s * 1000)


def sample(at: float, **cpu_s: float) -> ResourceSample:
    return ResourceSample(CpuSample(at, dict(cpu_s), 0.0, 0.0), {"broker": 300 * 2**20}, 4096)


def test_each_sentence_falls_in_the_minute_of_its_intended_send_time() -> None:
    tracks = [completed(0, 1), completed(59.999, 2), completed(60, 3), completed(179.5, 4)]
    buckets = bucket_by_minute(tracks, START, 3)
    assert [[t.key for t in b] for b in buckets] == [
        [tracks[0].key, tracks[1].key],
        [tracks[2].key],
        [tracks[3].key],
    ]


def test_a_send_at_or_past_the_end_stays_in_the_last_minute_and_one_before_the_start_in_the_first() -> None:
    buckets = bucket_by_minute([completed(180, 1), completed(-0.5, 1)], START, 3)
    assert [len(b) for b in buckets] == [1, 0, 1]
    assert bucket_by_minute([completed(1, 1)], START, 0) == []


@pytest.mark.parametrize(("minutes", "window"), [(30, 5), (10, 5), (9, 4), (3, 1), (2, 1), (1, 1)])
def test_the_windows_are_five_minutes_or_half_a_shorter_run(minutes: int, window: int) -> None:
    assert window_minutes(minutes) == window


def test_a_window_p99_pools_its_minutes_and_counts_only_completed_sentences() -> None:
    minute_one = [completed(i * 0.5, 100) for i in range(99)] + [completed(50, 1000)]
    minute_two = [completed(60 + i * 0.5, 200) for i in range(100)] + [pending(61)]
    buckets = bucket_by_minute(minute_one + minute_two, START, 2)
    assert window_p99(buckets, 0, 1) == 100.0  # nearest rank: the 99th of 100
    assert window_p99(buckets, 1, 1) == 200.0
    assert window_p99(buckets, 0, 2) == 200.0  # pooled: 200 values, the 198th
    # From the intended send time: each sentence was accepted 10 ms after it.
    assert window_p99(buckets, 1, 1, e2e=True) == 210.0
    assert window_p99([[pending(1)]], 0, 1) is None


@pytest.mark.parametrize(
    ("first", "last", "change", "met"),
    [
        (400.0, 400.0, 0.0, True),
        (400.0, 480.0, 0.2, True),
        (400.0, 481.0, 0.2025, False),
        (400.0, 320.0, -0.2, True),
        (400.0, 319.0, -0.2025, False),
        (400.0, 100.0, -0.75, False),  # much faster at the end: the first window was not steady
        (None, 300.0, None, False),
        (0.0, 300.0, None, False),
    ],
)
def test_drift_is_last_over_first_minus_one_and_the_target_is_within_twenty_percent_either_way(
    first: float | None, last: float, change: float | None, met: bool
) -> None:
    assert drift(first, last) == change
    assert target_met(drift(first, last)) is met


def test_platform_cpu_leaves_out_the_load_generator_and_the_machine_summaries() -> None:
    percent = {
        "broker": 40.0,
        "intent": 50.5,
        "loadgen": 12.0,
        "all ours": 102.5,
        "machine": 150.0,
        "others": 47.5,
    }
    assert platform_cpu_percent(percent) == 90.5
    before = CpuSample(0.0, {"broker": 10.0, "intent": 5.0, "loadgen": 1.0}, 0.0, 0.0)
    after = CpuSample(60.0, {"broker": 40.0, "intent": 2.0, "loadgen": 9.0}, 0.0, 0.0)
    # intent restarted (its new pid's CPU is lower): it counts 0, never negative; loadgen is not ours
    assert platform_cpu_seconds(before, after) == 30.0
    assert cpu_ms_per_sentence(30.0, 6000) == 5.0
    assert cpu_ms_per_sentence(30.0, 0) is None


def test_a_minute_row_has_its_sentences_latency_and_resources() -> None:
    tracks = [completed(i * 0.6, 100 + i) for i in range(100)] + [pending(30)]
    before = sample(0.0, broker=0.0, intent=0.0, loadgen=0.0)
    after = sample(60.0, broker=30.0, intent=30.0, loadgen=6.0)
    row = minute_row(0, tracks, START, before, after, final=False)
    assert row["minute"] == 1
    assert (row["offered"], row["completed"], row["unsettled"], row["lost"]) == (101, 100, 1, 0)
    assert (row["p50_ms"], row["p99_ms"]) == (149.0, 198.0)
    assert row["e2e_p99_ms"] == 208.0
    assert row["cpu_percent"]["broker"] == 50.0 and row["cpu_percent"]["loadgen"] == 10.0
    assert row["platform_cpu_percent"] == 100.0
    assert row["cpu_ms_per_sentence"] == 600.0  # 60 CPU seconds for 100 sentences
    assert row["rss_mb"] == {"broker": 300.0}
    assert row["broker_disk_bytes"] == 4096
    assert minute_row(0, tracks, START, before, after, final=True)["lost"] == 1


def test_minute_rows_need_both_boundary_samples() -> None:
    buckets = bucket_by_minute([completed(1, 100), completed(61, 100)], START, 2)
    samples = [sample(0.0, broker=0.0), sample(60.0, broker=6.0)]
    rows = minute_rows(buckets, START, samples, final=True)
    assert [r["minute"] for r in rows] == [1]


def test_the_headline_compares_the_first_and_last_windows_and_costs_the_platform_only() -> None:
    minutes = 10
    tracks = [completed(m * 60 + i * 0.5, 100 if m < 5 else 130) for m in range(minutes) for i in range(100)]
    buckets = bucket_by_minute(tracks, START, minutes)
    samples = [sample(m * 60.0, broker=m * 30.0, loadgen=m * 6.0) for m in range(minutes + 1)]
    figures = headline(buckets, samples, minutes)
    assert figures["window_minutes"] == 5
    assert (figures["first_5min_p99_ms"], figures["last_5min_p99_ms"]) == (100.0, 130.0)
    assert figures["p99_drift"] == 0.3
    assert figures["target_met"] is False
    assert (figures["first_5min_e2e_p99_ms"], figures["last_5min_e2e_p99_ms"]) == (110.0, 140.0)
    # 300 CPU seconds of the broker for 1,000 sentences; with the generator's 60 s: 360
    assert figures["cpu_ms_per_sentence"] == 300.0
    assert figures["cpu_ms_per_sentence_with_loadgen"] == 360.0


def test_a_short_run_compares_its_first_and_last_minute() -> None:
    tracks = [completed(m * 60 + 1, 100 + 10 * m) for m in range(3)]
    figures = headline(bucket_by_minute(tracks, START, 3), [sample(m * 60.0) for m in range(4)], 3)
    assert figures["window_minutes"] == 1
    assert (figures["first_5min_p99_ms"], figures["last_5min_p99_ms"]) == (100.0, 120.0)
    assert figures["p99_drift"] == 0.2 and figures["target_met"] is True
    assert MINUTE_MS == 60_000.0
