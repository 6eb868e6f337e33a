"""Planning's calls to the model gateway, batched: the ParseIntent calls that concurrent handlers make in
one event-loop turn leave as one ParseIntentBatch (at most MAX_BATCH sentences).

A consumer batch of intents runs its handlers concurrently, so under load each turn holds many
calls; one batch RPC instead of N single ones saves most of the gRPC and tracing work on both
sides. A call that is alone in its turn is made as a plain ParseIntent by its caller, in its own
trace context: at low load nothing changes, spans included. A batch RPC is traced once, in the
trace of the first sentence in it, with links to the traces of the others. A request the gateway
would refuse on its own (empty or too long text) is always sent alone, so it fails alone; an error
of the batch RPC (unavailable, deadline, rate limit) is every caller's error, as a call of their own
would have been.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.trace import Link

from yiju.gen.gateway.v1 import gateway_pb2 as gw
from yiju.gen.gateway.v1 import gateway_pb2_grpc as gw_grpc

MAX_BATCH = 256  # the gateway's limit per ParseIntentBatch
MAX_TEXT_CHARS = 2000  # the gateway refuses longer sentences (INVALID_ARGUMENT)
_ALONE = object()  # "nobody else called in this turn: make your own ParseIntent call"


def batchable(request: gw.ParseIntentRequest) -> bool:
    return bool(request.text.strip()) and len(request.text) <= MAX_TEXT_CHARS


class BatchingGatewayClient:
    def __init__(self, stub: gw_grpc.ModelGatewayServiceStub, timeout_s: float) -> None:
        self.stub = stub
        self.timeout_s = timeout_s
        self._queued: list[tuple[gw.ParseIntentRequest, asyncio.Future[Any], trace.SpanContext]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._batch_supported = True
        self._tracer = trace.get_tracer("yiju.planning")
        self.batches = 0
        self.batched = 0

    async def parse(self, request: gw.ParseIntentRequest) -> gw.ParseIntentResponse:
        if self._batch_supported and batchable(request):
            loop = asyncio.get_running_loop()
            future: asyncio.Future[Any] = loop.create_future()
            self._queued.append((request, future, trace.get_current_span().get_span_context()))
            if len(self._queued) == 1:
                loop.call_soon(self._flush)
            reply = await future
            if reply is not _ALONE:
                return reply  # type: ignore[no-any-return]
        return await self.stub.ParseIntent(request, timeout=self.timeout_s)

    def _flush(self) -> None:
        queued, self._queued = self._queued, []
        if len(queued) == 1:
            if not queued[0][1].done():
                queued[0][1].set_result(_ALONE)
            return
        for start in range(0, len(queued), MAX_BATCH):
            task = asyncio.get_running_loop().create_task(self._send(queued[start : start + MAX_BATCH]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[gw.ParseIntentRequest, asyncio.Future[Any], Any]]) -> None:
        links = [Link(ctx) for _, _, ctx in batch[1:] if ctx.is_valid]
        try:
            with self._tracer.start_as_current_span(
                "parse intent batch", links=links, attributes={"yiju.gateway.batch_size": len(batch)}
            ):
                reply = await self.stub.ParseIntentBatch(
                    gw.ParseIntentBatchRequest(requests=[r for r, _, _ in batch]), timeout=self.timeout_s
                )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:  # an older gateway: one call each
                self._batch_supported = False
                self._answer(batch, [_ALONE] * len(batch))
                return
            self._fail(batch, exc)
            return
        except BaseException as exc:
            self._fail(batch, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        self.batches += 1
        self.batched += len(batch)
        if len(reply.responses) != len(batch):
            self._fail(batch, RuntimeError("the gateway answered a batch with the wrong number of replies"))
            return
        self._answer(batch, list(reply.responses))

    @staticmethod
    def _answer(batch: list[tuple[Any, asyncio.Future[Any], Any]], replies: list[Any]) -> None:
        for (_, future, _), reply in zip(batch, replies, strict=True):
            if not future.done():
                future.set_result(reply)

    @staticmethod
    def _fail(batch: list[tuple[Any, asyncio.Future[Any], Any]], exc: BaseException) -> None:
        for _, future, _ in batch:
            if not future.done():
                future.set_exception(exc)
