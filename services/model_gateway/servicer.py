"""gRPC ModelGatewayService on top of the Gateway (or the GatewayPipeline in front of it).

Per-tenant limits are checked before any work: over a limit, the call ends RESOURCE_EXHAUSTED with
the time to wait (see ratelimit and retry_info). Model tokens a call used are charged after it.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

import grpc

from yiju.gen.gateway.v1 import gateway_pb2 as pb
from yiju.gen.gateway.v1 import gateway_pb2_grpc as pb_grpc
from yiju.model_gateway import metrics
from yiju.model_gateway.convert import request_from_pb, result_to_pb
from yiju.model_gateway.ratelimit import TenantLimiter
from yiju.model_gateway.retry_info import abort_exhausted
from yiju.model_gateway.tools import ParseRequest, ParseResult

MAX_TEXT_CHARS = 2000
MAX_BATCH = 256


class Parser(Protocol):
    def parse(self, requests: list[ParseRequest]) -> Awaitable[list[ParseResult]]: ...


def _check(request: pb.ParseIntentRequest) -> str | None:
    if not request.text.strip():
        return "text is empty"
    if len(request.text) > MAX_TEXT_CHARS:
        return f"text is longer than {MAX_TEXT_CHARS} characters"
    return None


def _outcome(result: ParseResult) -> str:
    return "clarification" if result.needs_clarification else "ok"


class ModelGatewayServicer(pb_grpc.ModelGatewayServiceServicer):
    def __init__(self, gateway: Parser, limiter: TenantLimiter | None = None) -> None:
        self.gateway = gateway
        self.limiter = limiter if limiter is not None and limiter.enabled else None

    async def _admit(
        self, context: grpc.aio.ServicerContext, method: str, tenant: str, sentences: int
    ) -> None:
        if self.limiter is None:
            return
        verdict = await self.limiter.admit(tenant, sentences)
        if not verdict.allowed:
            metrics.REQUESTS.labels(method, "rate_limited").inc(sentences)
            await abort_exhausted(
                context, f"tenant {verdict.kind} limit reached; retry later", verdict.retry_after_ms
            )

    async def _charge(self, tenant: str, results: list[ParseResult]) -> None:
        if self.limiter is not None:
            await self.limiter.charge_tokens(tenant, sum(r.tokens_used for r in results))

    async def ParseIntent(
        self, request: pb.ParseIntentRequest, context: grpc.aio.ServicerContext
    ) -> pb.ParseIntentResponse:
        problem = _check(request)
        if problem:
            metrics.REQUESTS.labels("ParseIntent", "invalid_argument").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        await self._admit(context, "ParseIntent", request.tenant_id, 1)
        [result] = await self.gateway.parse([request_from_pb(request)])
        await self._charge(request.tenant_id, [result])
        metrics.REQUESTS.labels("ParseIntent", _outcome(result)).inc()
        return result_to_pb(result)

    async def ParseIntentBatch(
        self, request: pb.ParseIntentBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.ParseIntentBatchResponse:
        if len(request.requests) > MAX_BATCH:
            metrics.REQUESTS.labels("ParseIntentBatch", "invalid_argument").inc(len(request.requests))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"at most {MAX_BATCH} requests per batch")
        for i, item in enumerate(request.requests):
            problem = _check(item)
            if problem:
                metrics.REQUESTS.labels("ParseIntentBatch", "invalid_argument").inc(len(request.requests))
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"requests[{i}]: {problem}")
        by_tenant: dict[str, int] = {}
        for item in request.requests:
            by_tenant[item.tenant_id] = by_tenant.get(item.tenant_id, 0) + 1
        for tenant, count in by_tenant.items():
            await self._admit(context, "ParseIntentBatch", tenant, count)
        results = await self.gateway.parse([request_from_pb(r) for r in request.requests])
        for tenant in by_tenant:
            await self._charge(
                tenant, [r for r, q in zip(results, request.requests, strict=True) if q.tenant_id == tenant]
            )
        for result in results:
            metrics.REQUESTS.labels("ParseIntentBatch", _outcome(result)).inc()
        return pb.ParseIntentBatchResponse(responses=[result_to_pb(r) for r in results])
