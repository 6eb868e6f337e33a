"""Single-flight: identical sentences in flight at the same time cost one backend call.

The first caller for a key starts the work as its own task; callers arriving before it finishes
await the same task. The work is shielded, so a caller that gives up (deadline, cancel) does not
cancel it for the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from yiju.model_gateway import metrics

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._calls: dict[str, asyncio.Task[T]] = {}
        self.shared = 0

    def in_flight(self) -> int:
        return len(self._calls)

    async def do(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Runs `work` once per key at a time; returns (its result, whether this caller joined)."""
        task = self._calls.get(key)
        joined = task is not None
        if task is None:
            task = asyncio.ensure_future(work())
            self._calls[key] = task
            task.add_done_callback(lambda _t, k=key: self._forget(k, _t))
        else:
            self.shared += 1
            metrics.SINGLEFLIGHT_SHARED.inc()
        return await asyncio.shield(task), joined

    def _forget(self, key: str, task: asyncio.Task[T]) -> None:
        if self._calls.get(key) is task:
            del self._calls[key]
        if not task.cancelled():
            task.exception()  # retrieved here so an unawaited failure is not reported as lost
