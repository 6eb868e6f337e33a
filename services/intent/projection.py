"""Keeps the order-status projection: every order event moves the order's document forward."""

from __future__ import annotations

from typing import Any

from yiju.common.consumer import EventContext, EventRouter
from yiju.common.envelope import now_iso
from yiju.common.metrics import ORDERS_BY_STATUS
from yiju.common.orders import OrderStatus
from yiju.common.topics import INTENT_PROJECTION
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.intent.store import OrderStore

S = OrderStatus
# Section ranks: a later stage of the same section wins, whatever order events arrive in.
PLAN_RANK = 1
PAYMENT_RANK = {"DECLINED": 1, "AUTHORIZED": 2, "VOIDED": 3, "CAPTURED": 3, "REFUNDED": 4}
FULFILMENT_RANK = 1
FULFILMENT_CANCELLED_RANK = 2  # a refund's cancellations come after the dispatch
MODEL_RANK = 1


def plan_section(plan: ev.Plan) -> tuple[int, dict[str, Any]]:
    lines = [
        {
            "sku": ln.sku,
            "name": ln.name,
            "vertical": ln.vertical,
            "quantity": ln.quantity,
            "unit_price_fen": ln.unit_price_fen,
            "line_total_fen": ln.line_total_fen,
        }
        for ln in plan.lines
    ]
    return PLAN_RANK, {
        "lines": lines,
        "subtotal_fen": plan.subtotal_fen,
        "subsidy_fen": plan.subsidy_fen,
        "total_fen": plan.total_fen,
    }


def payment_section(status: str, authorized: int, captured: int) -> tuple[int, dict[str, Any]]:
    return PAYMENT_RANK[status], {"status": status, "authorized_fen": authorized, "captured_fen": captured}


def refunded_payment_section(amount: int) -> tuple[int, dict[str, Any]]:
    rank, section = payment_section("REFUNDED", amount, amount)
    return rank, {**section, "refunded_fen": amount}


def fulfilment_section(records: Any, rank: int = FULFILMENT_RANK) -> tuple[int, list[dict[str, str]]]:
    return rank, [{"sku": r.sku, "status": r.status, "provider_ref": r.provider_ref} for r in records]


def model_section(event: ev.ParseRequested) -> tuple[int, dict[str, Any]]:
    """When planning asked the model and until when it waits (the sweeper leaves the order be till then)."""
    return MODEL_RANK, {"requested_at_ms": event.requested_at_ms, "deadline_ms": event.deadline_ms}


class Projection:
    def __init__(self, store: OrderStore) -> None:
        self.store = store

    async def _apply(
        self, ctx: EventContext, status: OrderStatus | None, reason: str = "", **sections: tuple[int, Any]
    ) -> None:
        await self.store.apply(ctx.order_id, status, ctx.meta.time or now_iso(), reason, sections)
        if status:
            ORDERS_BY_STATUS.labels(status).inc()

    def router(self) -> EventRouter:
        r = EventRouter(INTENT_PROJECTION)
        r.on(ev.IntentAccepted)(self.on_accepted)
        r.on(ev.PlanCreated)(lambda e, c: self._apply(c, S.PLANNED, plan=plan_section(e.plan)))
        r.on(ev.PlanAwaitingConfirmation)(
            lambda e, c: self._apply(c, S.AWAITING_CONFIRMATION, e.reason, plan=plan_section(e.plan))
        )
        r.on(ev.PlanRejected)(self.on_rejected)
        r.on(ev.PlanNeedsClarification)(lambda e, c: self._apply(c, S.NEEDS_CLARIFICATION, e.question))
        r.on(ev.OrderConfirmed)(lambda e, c: self._apply(c, None))
        r.on(ev.OrderCancelled)(lambda e, c: self._apply(c, S.CANCELLED, e.reason or "cancelled by the user"))
        r.on(ev.PaymentAuthorized)(
            lambda e, c: self._apply(c, S.AUTHORIZED, payment=payment_section("AUTHORIZED", e.amount_fen, 0))
        )
        r.on(ev.PaymentDeclined)(
            lambda e, c: self._apply(
                c, S.PAYMENT_DECLINED, e.reason, payment=payment_section("DECLINED", 0, 0)
            )
        )
        r.on(ev.PaymentCaptured)(
            lambda e, c: self._apply(
                c, S.COMPLETED, payment=payment_section("CAPTURED", e.amount_fen, e.amount_fen)
            )
        )
        r.on(ev.PaymentVoided)(
            lambda e, c: self._apply(c, None, payment=payment_section("VOIDED", e.amount_fen, 0))
        )
        r.on(ev.FulfilmentCompleted)(
            lambda e, c: self._apply(c, S.FULFILLED, fulfilment=fulfilment_section(e.records))
        )
        r.on(ev.FulfilmentFailed)(
            lambda e, c: self._apply(c, S.FAILED, e.reason, fulfilment=fulfilment_section(e.records))
        )
        r.on(ev.OrderRefundRequested)(self.on_refund_requested)
        r.on(ev.ParseRequested)(
            lambda e, c: self._apply(c, S.AWAITING_MODEL, "waiting for the model", model=model_section(e))
        )
        r.on(ev.PaymentRefunded)(
            lambda e, c: self._apply(
                c,
                S.REFUNDED,
                e.reason and f"refunded: {e.reason}",
                payment=refunded_payment_section(e.amount_fen),
            )
        )
        r.on(ev.FulfilmentCancelled)(
            lambda e, c: self._apply(
                c, None, fulfilment=fulfilment_section(e.records, FULFILMENT_CANCELLED_RANK)
            )
        )
        return r

    async def on_refund_requested(self, event: ev.OrderRefundRequested, ctx: EventContext) -> None:
        # Intent marked the order REFUND_PENDING when it took the request (request_refund.lua); applied
        # with the same time, this adds no second history entry, and rebuilds the status if it was lost.
        at = event.requested_at or ctx.meta.time or now_iso()
        await self.store.apply(ctx.order_id, S.REFUND_PENDING, at, f"refund requested: {event.reason}")
        ORDERS_BY_STATUS.labels(S.REFUND_PENDING).inc()

    async def on_accepted(self, event: ev.IntentAccepted, ctx: EventContext) -> None:
        # Normally created at ingest already; this makes the projection complete on its own.
        await self.store.create(
            event.order_id,
            event.user_id,
            event.text,
            event.locale,
            ctx.meta.time or now_iso(),
            ctx.meta.headers.get("traceparent", "-").split("-")[1]
            if ctx.meta.headers.get("traceparent")
            else "",
        )

    async def on_rejected(self, event: ev.PlanRejected, ctx: EventContext) -> None:
        sections = {"plan": plan_section(event.plan)} if event.HasField("plan") else {}
        await self._apply(ctx, S.REJECTED, event.reason or event.code, **sections)
