"""Micro-batching: concurrent ParseIntent calls become one backend.parse(list).

The first sentence to arrive opens a batch; the batch is sent when it holds `max_batch` sentences
or `max_wait_ms` after it opened, whichever comes first (0 ms: whatever is queued at that moment).
Batches are dispatched as their own tasks, so the next batch fills while the last one runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from yiju.model_gateway import metrics
from yiju.model_gateway.tools import ParseRequest, ParseResult

Handler = Callable[[list[ParseRequest]], Awaitable[list[ParseResult]]]

_Item = tuple[ParseRequest, "asyncio.Future[ParseResult]", float]


class MicroBatcher:
    def __init__(self, handler: Handler, *, max_batch: int = 32, max_wait_ms: float = 5.0) -> None:
        self.handler = handler
        self.max_batch = max(1, max_batch)
        self.max_wait_s = max(0.0, max_wait_ms) / 1000
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._collector: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.batches = 0

    async def submit(self, request: ParseRequest) -> ParseResult:
        if self._collector is None or self._collector.done():
            self._collector = asyncio.create_task(self._collect(), name="gateway-batcher")
        future: asyncio.Future[ParseResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((request, future, time.perf_counter()))
        return await future

    async def _collect(self) -> None:
        while True:
            batch = [await self._queue.get()]
            deadline = time.perf_counter() + self.max_wait_s
            while len(batch) < self.max_batch:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), left))
                except TimeoutError:
                    break
            task = asyncio.create_task(self._dispatch(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _dispatch(self, batch: list[_Item]) -> None:
        now = time.perf_counter()
        live = [item for item in batch if not item[1].done()]  # callers that gave up are dropped
        if not live:
            return
        self.batches += 1
        metrics.BATCH_SIZE.observe(len(live))
        for _, _, queued_at in live:
            metrics.QUEUE_WAIT.observe(now - queued_at)
        try:
            results = await self.handler([request for request, _, _ in live])
        except BaseException as exc:  # the chain never raises, but a caller must never hang
            for _, future, _ in live:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future, _), result in zip(live, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def aclose(self) -> None:
        tasks = [t for t in (self._collector, *self._running) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
