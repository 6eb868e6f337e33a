"""What a load test shows: a live progress bar while it runs, a table of phases at the end."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from yiju.loadgen.runner import LoadRunner, Phase


class LiveProgress:
    """A rich progress bar per phase (sent of expected, and the live figures); on a console that is not
    a terminal, one plain line every `plain_every_s` seconds instead."""

    def __init__(self, console: Console, plain_every_s: float = 5.0) -> None:
        self.console = console
        self.plain_every_s = plain_every_s
        self._progress: Progress | None = None
        self._task: Any = None
        self._phase = -1
        self._last_plain = 0.0

    def __enter__(self) -> LiveProgress:
        if self.console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[live]}"),
                console=self.console,
                transient=False,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def tick(self, runner: LoadRunner, phase: Phase, expected: int) -> None:
        now = time.monotonic()
        recent = runner.tracker.recent
        done = runner.tracker.completed_by_phase.get(phase.index, 0)
        errors = sum(phase.send_errors.values())
        live = (
            f"done {done}  in flight {runner.in_flight}  errors {errors}  "
            f"{recent.rate(now):.0f}/s  p99 {recent.percentile(now, 99):.0f} ms"
        )
        if self._progress is not None:
            if self._phase != phase.index:
                self._phase = phase.index
                self._task = self._progress.add_task(phase.label, total=max(expected, 1), live=live)
            self._progress.update(self._task, completed=phase.offered, live=live)
        elif now - self._last_plain >= self.plain_every_s:
            self._last_plain = now
            self.console.print(f"  {phase.label}: sent {phase.offered}/{expected}  {live}", highlight=False)


def _ms(stats: dict[str, float], key: str) -> str:
    return f"{stats.get(key, 0):.0f}"


def phase_table(results: Sequence[dict[str, Any]], title: str = "load test") -> Table:
    table = Table(title=title, title_justify="left")
    for name in (
        "phase",
        "offered/s",
        "done/s",
        "completed",
        "p50",
        "p95",
        "p99",
        "pipe p99",
        "send lag p99",
        "errors",
        "lost",
        "dup",
        "other",
    ):
        table.add_column(name, justify="left" if name == "phase" else "right")
    for r in results:
        other = {k: v for k, v in r["statuses"].items() if k != "COMPLETED"}
        table.add_row(
            r["label"],
            f"{r['offered_per_s']:.0f}",
            f"{r['completed_per_s']:.0f}",
            f"{r['completed']}/{r['offered']}",
            _ms(r["latency_ms"], "p50"),
            _ms(r["latency_ms"], "p95"),
            _ms(r["latency_ms"], "p99"),
            _ms(r["pipeline_latency_ms"], "p99"),
            _ms(r["send_lag_ms"], "p99"),
            str(r["failed"]),
            str(r["lost"] or r["unsettled"]),
            str(r["duplicated"]),
            ", ".join(f"{k} {v}" for k, v in other.items()) or "-",
        )
    table.caption = (
        "latency in ms from the intended send time to the order's COMPLETED event (open loop); "
        "pipe: from intent accepted; lost: never settled"
    )
    return table
