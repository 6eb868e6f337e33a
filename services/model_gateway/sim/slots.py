"""The concurrency cap of a model server (vLLM's --max-num-seqs) with a FIFO queue behind it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable


class SlotPool:
    """`async with pool.slot():` waits for one of `size` slots; counts what is queued and served."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._free = asyncio.Semaphore(size)
        self.in_flight = 0
        self.queued = 0
        self.max_queued = 0
        self.max_in_flight = 0
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Returns once `predicate()` holds; it is checked after every change of the counts."""
        while not predicate():
            self._changed.clear()
            await self._changed.wait()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._free.locked():  # every slot taken (or others waiting first): join the queue
            self.queued += 1
            self.max_queued = max(self.max_queued, self.queued)
            self._changed.set()
            try:
                await self._free.acquire()
            finally:
                self.queued -= 1
        else:
            await self._free.acquire()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self._changed.set()
        try:
            yield
        finally:
            self.in_flight -= 1
            self._free.release()
            self._changed.set()
