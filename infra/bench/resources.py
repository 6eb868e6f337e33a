"""Memory and disk of processes and directories, from /proc and the file system (Linux)."""

from __future__ import annotations

import os
from pathlib import Path

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes(pid: int) -> int | None:
    """Resident set size of `pid` in bytes (None if it is gone)."""
    try:
        statm = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return None
    return int(statm[1]) * PAGE_SIZE


def rss_by_name(pids: dict[str, int]) -> dict[str, int]:
    """RSS of each named pid, and of this process as "loadgen" (the name cpu.sample gives it)."""
    out = {name: rss for name, pid in pids.items() if (rss := rss_bytes(pid)) is not None}
    out["loadgen"] = rss_bytes(os.getpid()) or 0
    return out


def disk_usage_bytes(path: Path) -> int:
    """Disk space allocated to the files under `path` (blocks, as `du`: sparse index files count for
    what they use, not their length). 0 when it does not exist; files that vanish meanwhile are skipped."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    return total
