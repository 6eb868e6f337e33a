"""The public gRPC API (yiju.intent.v1.IntentService), the same operations as HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from yiju.common.auth import AuthError, Principal
from yiju.gen.intent.v1 import intent_pb2 as pb
from yiju.gen.intent.v1 import intent_pb2_grpc as pb_grpc
from yiju.intent.edge import Edge, RateLimited
from yiju.intent.ingest import Ingest, IngestError
from yiju.intent.orders import OrderActions
from yiju.intent.watchers import OrderWatchers, WatchersFull

GRPC_STATUS = {
    "not_found": grpc.StatusCode.NOT_FOUND,
    "request_in_flight": grpc.StatusCode.ABORTED,
    "not_awaiting_confirmation": grpc.StatusCode.FAILED_PRECONDITION,
    "not_refundable": grpc.StatusCode.FAILED_PRECONDITION,
    "refund_window_closed": grpc.StatusCode.PERMISSION_DENIED,
    "idempotency_conflict": grpc.StatusCode.ALREADY_EXISTS,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
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
    """Each call needs `authorization: Bearer <token>` (or `x-api-key`) metadata."""

    def __init__(self, ingest: Ingest, orders: OrderActions, edge: Edge, watchers: OrderWatchers) -> None:
        self.ingest = ingest
        self.orders = orders
        self.edge = edge
        self.watchers = watchers

    async def _principal(self, context: grpc.aio.ServicerContext) -> Principal:
        metadata = dict(context.invocation_metadata() or ())
        try:
            who = self.edge.authenticate(metadata.get("authorization"), metadata.get("x-api-key"))
            await self.edge.admit(who)
        except AuthError as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
            raise
        except RateLimited as exc:
            context.set_trailing_metadata((("retry-after-ms", str(exc.retry_after_ms)),))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
            raise
        return who

    async def SubmitIntent(
        self, request: pb.SubmitIntentRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitIntentResponse:
        who = await self._principal(context)
        if request.user_id != who.user_id:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "user_id does not match the credential")
        try:
            result = await self.ingest.submit(
                request.user_id, request.text, request.idempotency_key, request.locale
            )
        except IngestError as exc:
            await _abort(context, exc)
            raise
        return pb.SubmitIntentResponse(order_id=result.order_id, status="ACCEPTED")

    async def GetOrder(self, request: pb.GetOrderRequest, context: grpc.aio.ServicerContext) -> pb.Order:
        who = await self._principal(context)
        try:
            return order_to_pb(await self.orders.get(request.order_id, who.user_id))
        except IngestError as exc:
            await _abort(context, exc)
            raise

    async def WatchOrder(
        self, request: pb.WatchOrderRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Order]:
        who = await self._principal(context)
        try:
            await self.orders.get(request.order_id, who.user_id)
        except IngestError as exc:
            await _abort(context, exc)
            raise
        try:
            lease = self.watchers.admit()
        except WatchersFull as exc:
            context.set_trailing_metadata((("retry-after-ms", str(exc.retry_after_s * 1000)),))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"too_many_watchers: {exc}")
            raise
        async for order in lease.stream(request.order_id):
            if order is not None:
                yield order_to_pb(order)

    async def ConfirmOrder(
        self, request: pb.OrderActionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Order:
        who = await self._principal(context)
        try:
            return order_to_pb(await self.orders.confirm(request.order_id, who.user_id))
        except IngestError as exc:
            await _abort(context, exc)
            raise

    async def CancelOrder(
        self, request: pb.OrderActionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Order:
        who = await self._principal(context)
        try:
            return order_to_pb(await self.orders.cancel(request.order_id, who.user_id))
        except IngestError as exc:
            await _abort(context, exc)
            raise

    async def RefundOrder(
        self, request: pb.RefundOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.Order:
        who = await self._principal(context)
        try:
            return order_to_pb(await self.orders.refund(request.order_id, who, request.reason))
        except IngestError as exc:
            await _abort(context, exc)
            raise
