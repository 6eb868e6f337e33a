"""Payment: authorize a plan against the payer's wallet, capture after fulfilment, void on failure,
refund a captured order when its refund is requested (at most once each, keyed by order id)."""

from __future__ import annotations

import logging
from pathlib import Path

from yiju.common.catalog import Catalog
from yiju.common.consumer import EventContext, EventRouter, PermanentError
from yiju.common.mandates import mandate_for
from yiju.common.topics import PAYMENT
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.payment.wallet import Wallets
from yiju.planning.policy import yuan

log = logging.getLogger(__name__)


def plan_problem(plan: ev.Plan, user_id: str, catalog: Catalog, catalog_dir: Path) -> str | None:
    """Checks the plan again against the catalog and the mandate: the money side trusts nobody."""
    user = catalog.user(user_id)
    if user is None:
        return f"unknown payer {user_id}"
    if plan.payer_account != f"wallet:{user_id}":
        return "the paying account is not the ordering user's wallet"
    for line in plan.lines:
        product = catalog.product(line.sku)
        if (
            product is None
            or product.price_fen != line.unit_price_fen
            or product.merchant_id != line.merchant_id
        ):
            return f"line {line.sku} does not match the catalog"
        if line.line_total_fen != line.unit_price_fen * line.quantity or line.quantity < 1:
            return f"line {line.sku} total is inconsistent"
    subtotal = sum(line.line_total_fen for line in plan.lines)
    campaign = catalog.campaign
    max_subsidy = campaign.discount_fen if campaign else 0
    if plan.subtotal_fen != subtotal or not 0 <= plan.subsidy_fen <= max_subsidy:
        return "plan subtotal or subsidy is inconsistent"
    if plan.total_fen != subtotal - plan.subsidy_fen or plan.total_fen <= 0:
        return "plan total is inconsistent"
    mandate = mandate_for(user, catalog_dir)
    blocked = {line.vertical for line in plan.lines} - mandate.allowed_verticals
    if blocked:
        return f"the mandate does not allow {', '.join(sorted(blocked))} orders"
    if plan.total_fen > user.spend_limit_per_order_fen:
        limit = yuan(user.spend_limit_per_order_fen)
        return f"total {yuan(plan.total_fen)} exceeds the per-order limit of {limit}"
    return None


DECLINE_REASONS = {
    "DECLINED": "insufficient wallet balance",
    "OVER_DAILY_LIMIT": "the day's spending limit would be exceeded",
}


class Payments:
    def __init__(self, catalog: Catalog, wallets: Wallets, catalog_dir: Path) -> None:
        self.catalog = catalog
        self.wallets = wallets
        self.catalog_dir = catalog_dir

    def router(self) -> EventRouter:
        router = EventRouter(PAYMENT)
        router.on(ev.PlanCreated)(self.on_plan_created)
        router.on(ev.FulfilmentCompleted)(self.on_fulfilment_completed)
        router.on(ev.FulfilmentFailed)(self.on_fulfilment_failed)
        router.on(ev.OrderRefundRequested)(self.on_refund_requested)
        return router

    async def on_plan_created(self, event: ev.PlanCreated, ctx: EventContext) -> None:
        order_id, user_id, plan = event.order_id, event.user_id, event.plan
        problem = plan_problem(plan, user_id, self.catalog, self.catalog_dir)
        if problem:
            ctx.emit(
                ev.PaymentDeclined(
                    order_id=order_id,
                    user_id=user_id,
                    amount_fen=plan.total_fen,
                    code="plan_invalid",
                    reason=problem,
                ),
                order_id,
            )
            return
        user = self.catalog.users[user_id]
        per_day = mandate_for(user, self.catalog_dir).per_day_fen
        movement = await self.wallets.authorize(user_id, order_id, plan.total_fen, per_day)
        if movement.status in ("AUTHORIZED", "CAPTURED", "VOIDED", "REFUNDED"):
            # Authorized now or before (a redelivery): the same event, with the same event id.
            ctx.emit(
                ev.PaymentAuthorized(
                    order_id=order_id,
                    user_id=user_id,
                    amount_fen=movement.amount_fen,
                    authorization_id=movement.authorization_id or f"auth-{order_id}",
                    plan=plan,
                ),
                order_id,
            )
        else:
            reason = DECLINE_REASONS.get(movement.status, "no wallet for this user")
            ctx.emit(
                ev.PaymentDeclined(
                    order_id=order_id,
                    user_id=user_id,
                    amount_fen=plan.total_fen,
                    code=movement.status.lower(),
                    reason=reason,
                ),
                order_id,
            )

    async def on_fulfilment_completed(self, event: ev.FulfilmentCompleted, ctx: EventContext) -> None:
        movement = await self.wallets.capture(event.user_id, event.order_id)
        if movement.status == "CAPTURED":
            ctx.emit(
                ev.PaymentCaptured(
                    order_id=event.order_id,
                    user_id=event.user_id,
                    amount_fen=movement.amount_fen,
                    authorization_id=f"auth-{event.order_id}",
                ),
                event.order_id,
            )
        else:
            log.error(
                "capture refused", extra={"order_id": event.order_id, "payment_status": movement.status}
            )

    async def on_fulfilment_failed(self, event: ev.FulfilmentFailed, ctx: EventContext) -> None:
        movement = await self.wallets.void(event.user_id, event.order_id)
        if movement.status == "VOIDED":  # a void never undoes a capture: only a refund does
            ctx.emit(
                ev.PaymentVoided(
                    order_id=event.order_id,
                    user_id=event.user_id,
                    amount_fen=movement.amount_fen,
                    reason=f"fulfilment failed: {event.reason}",
                ),
                event.order_id,
            )
        else:
            log.error("void refused", extra={"order_id": event.order_id, "payment_status": movement.status})

    async def on_refund_requested(self, event: ev.OrderRefundRequested, ctx: EventContext) -> None:
        """Returns the captured amount to the wallet, once (settle.lua, CAPTURED -> REFUNDED); a repeat
        answers the same event. A payment that was never captured, or whose record is gone, cannot be
        refunded: the request is dead-lettered with the reason, for an operator."""
        movement = await self.wallets.refund(event.user_id, event.order_id)
        if movement.status != "REFUNDED":
            raise PermanentError(
                f"order {event.order_id}: payment is {movement.status}, only a captured payment is refunded"
            )
        ctx.emit(
            ev.PaymentRefunded(
                order_id=event.order_id,
                user_id=event.user_id,
                amount_fen=movement.amount_fen,
                authorization_id=f"auth-{event.order_id}",
                reason=event.reason,
            ),
            event.order_id,
        )
