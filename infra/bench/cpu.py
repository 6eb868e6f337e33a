"""CPU time of processes and of the whole machine, from /proc (Linux), sampled around a benchmark step."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_s(pid: int) -> float | None:
    """utime + stime of `pid` in seconds (None if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores together."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0, 0.0
    values = [int(v) for v in first]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return (total - idle) / TICKS, total / TICKS


@dataclass
class CpuSample:
    at: float
    processes: dict[str, float]
    machine_busy: float
    machine_total: float


def sample(pids: dict[str, int]) -> CpuSample:
    """CPU seconds so far of each named pid (and this process, as "loadgen"), and of the machine."""
    processes = {name: cpu for name, pid in pids.items() if (cpu := process_cpu_s(pid)) is not None}
    processes["loadgen"] = process_cpu_s(os.getpid()) or 0.0
    busy, total = machine_cpu_s()
    return CpuSample(time.monotonic(), processes, busy, total)


def usage(before: CpuSample, after: CpuSample) -> dict[str, float]:
    """Per process: CPU used between the samples as a percentage of one core. Also "all ours" (their sum),
    "machine" (every core's busy time, as % of one core: 200 = both cores busy) and "others" (machine
    minus ours: whatever else ran on the machine meanwhile)."""
    wall = max(after.at - before.at, 1e-9)
    # A process restarted in between (a new pid, its CPU counted from 0) reads 0, never negative.
    out = {
        name: round(
            100 * max(after.processes[name] - before.processes.get(name, after.processes[name]), 0.0) / wall,
            1,
        )
        for name in after.processes
    }
    ours = sum(out.values())
    machine = 100 * (after.machine_busy - before.machine_busy) / wall
    out["all ours"] = round(ours, 1)
    out["machine"] = round(machine, 1)
    out["others"] = round(max(machine - ours, 0.0), 1)
    return out


LOADGEN = "loadgen"
NOT_PROCESSES = ("all ours", "machine", "others")


def ms_per_sentence_by_process(used: dict[str, float], seconds: float, sentences: int) -> dict[str, float]:
    """CPU ms per sentence of each process, from `usage` (% of one core) over `seconds`."""
    return {
        name: round(percent / 100 * seconds * 1000 / max(sentences, 1), 3)
        for name, percent in used.items()
        if name not in NOT_PROCESSES
    }


def platform_ms_per_sentence(used: dict[str, float], seconds: float, sentences: int) -> float:
    """CPU ms per sentence of the platform's processes only (broker, Redis, the services), without the
    load generator (this process) and without whatever else ran on the machine."""
    by_process = ms_per_sentence_by_process(used, seconds, sentences)
    return round(sum(v for name, v in by_process.items() if name != LOADGEN), 3)
