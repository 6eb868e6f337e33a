"""The benchmarks' console: stderr, wide enough for their tables also when it is not a terminal."""

from __future__ import annotations

from rich.console import Console

NOT_A_TERMINAL_WIDTH = 200  # a log file or a pipe: rich would otherwise wrap and squash at 80 columns


def bench_console() -> Console:
    console = Console(stderr=True)
    return console if console.is_terminal else Console(stderr=True, width=NOT_A_TERMINAL_WIDTH)
