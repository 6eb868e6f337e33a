"""Planning: a sentence's actions (from the model gateway) become a priced, policy-checked plan."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Protocol

import grpc

from yiju.common.catalog import Catalog, User
from yiju.common.consumer import EventContext, EventRouter, RetryLater
from yiju.common.decisions import DecisionStore
from yiju.common.mandates import daily_key, mandate_for, spend_day
from yiju.common.settings import Settings
from yiju.common.topics import PLANNING
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.gen.gateway.v1 import gateway_pb2 as gw
from yiju.gen.gateway.v1 import gateway_pb2_grpc as gw_grpc
from yiju.model_gateway.convert import result_from_pb
from yiju.model_gateway.tools import ParseResult
from yiju.planning import policy
from yiju.planning.gateway_client import BatchingGatewayClient
from yiju.planning.pricing import CatalogIndex, OverLimit, Unresolvable, price_lines
from yiju.planning.subsidy import Subsidies

log = logging.getLogger(__name__)
_TRANSIENT = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.CANCELLED,
)


def _epoch_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


class ModelPathProtocol(Protocol):
    async def ask(self, event: ev.IntentAccepted, user: User, ctx: EventContext) -> None: ...

    async def on_parse_completed(self, event: ev.ParseCompleted, ctx: EventContext) -> None: ...


class Planner:
    def __init__(
        self,
        catalog: Catalog,
        gateway: gw_grpc.ModelGatewayServiceStub,
        subsidies: Subsidies,
        decisions: DecisionStore,
        settings: Settings,
    ) -> None:
        self.catalog = catalog
        self.index = CatalogIndex.build(catalog)
        self.gateway = gateway
        self.gateway_calls = BatchingGatewayClient(gateway, settings.gateway_timeout_s)
        self.subsidies = subsidies
        self.decisions = decisions
        self.redis = decisions.redis
        self.settings = settings
        # Set by the app: the Kafka model path (ask, then plan on ParseCompleted or at the deadline);
        # model_path only when it is the configured way of asking (YIJU_PLANNING_MODEL_PATH=kafka).
        self.model_waits: ModelPathProtocol | None = None
        self.model_path: ModelPathProtocol | None = None

    def router(self) -> EventRouter:
        router = EventRouter(PLANNING)
        router.on(ev.IntentAccepted)(self.on_intent_accepted)
        router.on(ev.OrderConfirmed)(self.on_order_confirmed)
        router.on(ev.OrderCancelled)(self.on_money_released)
        router.on(ev.PaymentDeclined)(self.on_money_released)
        router.on(ev.PaymentVoided)(self.on_money_released)
        router.on(ev.ParseCompleted)(self.on_parse_completed)
        return router

    async def on_intent_accepted(self, event: ev.IntentAccepted, ctx: EventContext) -> None:
        decision = await self.decisions.get(event.order_id)
        if isinstance(decision, ev.OrderCancelled):
            return  # cancelled (by the sweeper) before it was planned: nothing to plan, nothing reserved
        if decision is None:
            user = self.catalog.user(event.user_id)
            if self.model_path is not None and user is not None:
                await self.model_path.ask(event, user, ctx)  # the answer comes as ParseCompleted
                return
            decision = await self.decisions.remember(event.order_id, await self.decide(event))
        ctx.emit(decision, event.order_id)

    async def on_parse_completed(self, event: ev.ParseCompleted, ctx: EventContext) -> None:
        if self.model_waits is None:
            log.warning(
                "model answer for a planner without the Kafka model path", extra={"order_id": event.order_id}
            )
            return
        await self.model_waits.on_parse_completed(event, ctx)

    async def on_order_confirmed(self, event: ev.OrderConfirmed, ctx: EventContext) -> None:
        decision = await self.decisions.get(event.order_id)
        if (
            isinstance(decision, ev.PlanAwaitingConfirmation)
            and ctx.meta.time
            and _epoch_ms(ctx.meta.time) > decision.expires_at_ms
        ):
            await self.subsidies.release(event.order_id, decision.user_id)
            ctx.emit(
                ev.PlanRejected(
                    order_id=event.order_id,
                    user_id=decision.user_id,
                    code="confirmation_expired",
                    reason="the confirmation came after the order expired",
                ),
                event.order_id,
            )
        elif isinstance(decision, ev.PlanAwaitingConfirmation):
            ctx.emit(
                ev.PlanCreated(order_id=event.order_id, user_id=decision.user_id, plan=decision.plan),
                event.order_id,
            )
        else:
            log.warning("confirmation for an order that is not waiting", extra={"order_id": event.order_id})

    async def on_money_released(
        self, event: ev.OrderCancelled | ev.PaymentDeclined | ev.PaymentVoided, ctx: EventContext
    ) -> None:
        if isinstance(event, ev.OrderCancelled):
            # Remembered as the decision when it comes first, so a later plan is never made (and never
            # holds a subsidy) for an order that is already cancelled.
            await self.decisions.remember(event.order_id, event)
        released = await self.subsidies.release(event.order_id, event.user_id)
        if released:
            log.info("subsidy released", extra={"order_id": event.order_id, "amount_fen": released})

    async def _parse(self, event: ev.IntentAccepted, user: User) -> gw.ParseIntentResponse:
        request = gw.ParseIntentRequest(
            text=event.text,
            locale=event.locale or user.locale,
            user_id=user.id,
            tenant_id=user.id,
            address_labels=list(user.addresses),
            request_id=event.order_id,
        )
        try:
            return await self.gateway_calls.parse(request)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _TRANSIENT:
                raise RetryLater(f"model gateway: {exc.code().name} {exc.details()}") from exc
            raise

    async def decide(
        self, event: ev.IntentAccepted
    ) -> ev.PlanCreated | ev.PlanRejected | ev.PlanNeedsClarification | ev.PlanAwaitingConfirmation:
        order_id, user_id = event.order_id, event.user_id
        user = self.catalog.user(user_id)
        if user is None:
            return ev.PlanRejected(
                order_id=order_id, user_id=user_id, code="unknown_user", reason=f"unknown user {user_id}"
            )
        return await self.plan_from(order_id, user, result_from_pb(await self._parse(event, user)))

    async def plan_from(
        self, order_id: str, user: User, parsed: ParseResult
    ) -> ev.PlanCreated | ev.PlanRejected | ev.PlanNeedsClarification | ev.PlanAwaitingConfirmation:
        """The plan for the model's (or the rules backend's) actions: priced from the catalog, the subsidy
        reserved (once per order), the user's mandate applied. The payer is always the user's wallet."""
        user_id = user.id
        if parsed.needs_clarification:
            return ev.PlanNeedsClarification(
                order_id=order_id,
                user_id=user_id,
                question=parsed.clarification or "What would you like to order?",
            )
        try:
            lines = price_lines(parsed.actions, user, self.catalog, self.index)
        except Unresolvable as exc:
            return ev.PlanNeedsClarification(
                order_id=order_id, user_id=user_id, question=f"{exc}; what did you mean?"
            )
        except OverLimit as exc:
            return ev.PlanRejected(order_id=order_id, user_id=user_id, code="over_limit", reason=str(exc))
        subtotal = sum(line.line_total_fen for line in lines)
        subsidy = await self.subsidies.reserve(order_id, user_id, subtotal)
        campaign = self.catalog.campaign
        plan = ev.Plan(
            lines=lines,
            subtotal_fen=subtotal,
            subsidy_fen=subsidy,
            campaign_id=campaign.id if subsidy and campaign else "",
            total_fen=subtotal - subsidy,
            currency=self.catalog.currency,
            payer_account=f"wallet:{user.id}",
            catalog_version=self.catalog.version,
        )
        mandate = mandate_for(user, self.settings.catalog_dir)
        spent_today = int(await self.redis.hget(daily_key(user_id, spend_day()), "spent") or 0)
        verdict = policy.check(plan, mandate, spent_today)
        if verdict.verdict is policy.Verdict.REJECT:
            await self.subsidies.release(order_id, user_id)
            plan.subsidy_fen, plan.total_fen, plan.campaign_id = 0, subtotal, ""
            return ev.PlanRejected(
                order_id=order_id, user_id=user_id, code=verdict.code, reason=verdict.reason, plan=plan
            )
        if verdict.verdict is policy.Verdict.CONFIRM:
            expires = int(time.time() * 1000) + mandate.confirmation_ttl_s * 1000
            return ev.PlanAwaitingConfirmation(
                order_id=order_id, user_id=user_id, plan=plan, reason=verdict.reason, expires_at_ms=expires
            )
        return ev.PlanCreated(order_id=order_id, user_id=user_id, plan=plan)
