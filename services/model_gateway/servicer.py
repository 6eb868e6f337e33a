"""gRPC ModelGatewayService on top of the Gateway."""

from __future__ import annotations

import grpc

from yiju.gen.gateway.v1 import gateway_pb2 as pb
from yiju.gen.gateway.v1 import gateway_pb2_grpc as pb_grpc
from yiju.model_gateway.convert import request_from_pb, result_to_pb
from yiju.model_gateway.gateway import Gateway

MAX_TEXT_CHARS = 2000
MAX_BATCH = 256


def _check(request: pb.ParseIntentRequest) -> str | None:
    if not request.text.strip():
        return "text is empty"
    if len(request.text) > MAX_TEXT_CHARS:
        return f"text is longer than {MAX_TEXT_CHARS} characters"
    return None


class ModelGatewayServicer(pb_grpc.ModelGatewayServiceServicer):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def ParseIntent(
        self, request: pb.ParseIntentRequest, context: grpc.aio.ServicerContext
    ) -> pb.ParseIntentResponse:
        problem = _check(request)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        [result] = await self.gateway.parse([request_from_pb(request)])
        return result_to_pb(result)

    async def ParseIntentBatch(
        self, request: pb.ParseIntentBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.ParseIntentBatchResponse:
        if len(request.requests) > MAX_BATCH:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"at most {MAX_BATCH} requests per batch")
        for i, item in enumerate(request.requests):
            problem = _check(item)
            if problem:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"requests[{i}]: {problem}")
        results = await self.gateway.parse([request_from_pb(r) for r in request.requests])
        return pb.ParseIntentBatchResponse(responses=[result_to_pb(r) for r in results])
