"""The public gRPC API (yiju.intent.v1.IntentService), the same operations as HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from yiju.gen.intent.v1 import intent_pb2 as pb
from yiju.gen.intent.v1 import intent_pb2_grpc as pb_grpc
from yiju.intent.ingest import Ingest, IngestError
from yiju.intent.orders import OrderActions

GRPC_STATUS = {
    "not_found": grpc.StatusCode.NOT_FOUND,
    "request_in_flight": grpc.StatusCode.ABORTED,
    "not_awaiting_confirmation": grpc.StatusCode.FAILED_PRECONDITION,
    "idempotency_conflict": grpc.StatusCode.ALREADY_EXISTS,
}


def order_to_pb(order: dict[str, Any]) -> pb.Order:
    return pb.Order(
        order_id=order["order_id"],
        user_id=order["user_id"],
        text=order["text"],
        status=order["status"],
        reason=order["reason"],
        lines=[pb.OrderLine(**line) for line in order["lines"]],
        subtotal_fen=order["subtotal_fen"],
        subsidy_fen=order["subsidy_fen"],
        total_fen=order["total_fen"],
        payment=pb.Payment(**order["payment"]),
        fulfilment=[pb.Fulfilment(**f) for f in order["fulfilment"]],
        history=[pb.StatusChange(**h) for h in order["history"]],
        trace_id=order["trace_id"],
    )


async def _abort(context: grpc.aio.ServicerContext, exc: IngestError) -> None:
    await context.abort(
        GRPC_STATUS.get(exc.code, grpc.StatusCode.INVALID_ARGUMENT), f"{exc.code}: {exc.message}"
    )


class IntentServicer(pb_grpc.IntentServiceServicer):
    def __init__(self, ingest: Ingest, orders: OrderActions) -> None:
        self.ingest = ingest
        self.orders = orders

    async def SubmitIntent(
        self, request: pb.SubmitIntentRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitIntentResponse:
        try:
            result = await self.ingest.submit(
                request.user_id, request.text, request.idempotency_key, request.locale
            )
        except IngestError as exc:
            await _abort(context, exc)
            raise
        return pb.SubmitIntentResponse(order_id=result.order_id, status="ACCEPTED")

    async def GetOrder(self, request: pb.GetOrderRequest, context: grpc.aio.ServicerContext) -> pb.Order:
        try:
            return order_to_pb(await self.orders.get(request.order_id))
        except IngestError as exc:
            await _abort(context, exc)
            raise

    async def WatchOrder(
        self, request: pb.WatchOrderRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Order]:
        try:
            await self.orders.get(request.order_id)
        except IngestError as exc:
            await _abort(context, exc)
            raise
        async for order in self.orders.store.watch(request.order_id):
            yield order_to_pb(order)

    async def ConfirmOrder(
        self, request: pb.OrderActionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Order:
        try:
            return order_to_pb(await self.orders.confirm(request.order_id))
        except IngestError as exc:
            await _abort(context, exc)
            raise

    async def CancelOrder(
        self, request: pb.OrderActionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Order:
        try:
            return order_to_pb(await self.orders.cancel(request.order_id))
        except IngestError as exc:
            await _abort(context, exc)
            raise
