"""Fulfilment: dispatch every line of an authorized order to its vertical's provider, all or nothing.

If any line fails, the lines already dispatched are cancelled (compensation) and the order fails;
payment then voids the authorization. The outcome is remembered by order id, so a redelivered
event re-emits the same outcome instead of dispatching again.

The remembered outcome (`decision:fulfilment:<order>`, SET NX) is also where the intent sweeper fails
an order that stopped moving. If the sweeper's claim lands while the providers are being called, the
order has failed (payment voids), so what was dispatched is cancelled: from memory, or, when the process
died in between, line by line on the redelivery (`fulfilment:dispatching:<order>`, set before the first
provider call, says that providers may have taken something).
"""

from __future__ import annotations

import asyncio
import logging

from yiju.common.consumer import EventContext, EventRouter
from yiju.common.decisions import DecisionStore
from yiju.common.topics import FULFILMENT
from yiju.fulfilment.providers import Dispatch, Provider, ProviderError
from yiju.gen.events.v1 import order_events_pb2 as ev

log = logging.getLogger(__name__)

Outcome = ev.FulfilmentCompleted | ev.FulfilmentFailed


def dispatching_key(order_id: str) -> str:
    return f"fulfilment:dispatching:{order_id}"


def claimed_by_sweeper(outcome: Outcome) -> bool:
    """The sweeper's claim is a failure without records; fulfilment's own failure records every line."""
    return isinstance(outcome, ev.FulfilmentFailed) and not outcome.records


class Dispatcher:
    def __init__(self, providers: dict[str, Provider], decisions: DecisionStore) -> None:
        self.providers = providers
        self.decisions = decisions
        self.redis = decisions.redis

    def router(self) -> EventRouter:
        router = EventRouter(FULFILMENT)
        router.on(ev.PaymentAuthorized)(self.on_payment_authorized)
        return router

    async def on_payment_authorized(self, event: ev.PaymentAuthorized, ctx: EventContext) -> None:
        order_id = event.order_id
        outcome = await self.decisions.get(order_id)
        if outcome is None:
            marker = dispatching_key(order_id)
            await self.redis.set(marker, "1", ex=self.decisions.ttl_s)
            ours = await self.fulfil(event)
            outcome = await self.decisions.remember(order_id, ours)
            if outcome is not ours:  # the sweeper failed the order while the providers were called
                await self.withdraw(event, ours)
            await self.redis.delete(marker)
        elif claimed_by_sweeper(outcome) and await self.redis.exists(dispatching_key(order_id)):
            await self.withdraw_unconfirmed(event)  # a previous attempt died after calling providers
            await self.redis.delete(dispatching_key(order_id))
        ctx.emit(outcome, order_id)

    async def withdraw(self, event: ev.PaymentAuthorized, ours: Outcome) -> None:
        """Cancels the lines our lost outcome had dispatched (a failure of ours cancelled them already)."""
        dispatched = [r for r in ours.records if r.status == "DISPATCHED"]
        await asyncio.gather(
            *(self.providers[r.vertical].cancel(event.order_id, Dispatch(r.provider_ref)) for r in dispatched)
        )
        log.warning(
            "order failed by the sweeper during dispatch: dispatched lines cancelled",
            extra={"order_id": event.order_id, "cancelled": len(dispatched)},
        )

    async def withdraw_unconfirmed(self, event: ev.PaymentAuthorized) -> None:
        """Cancels whatever the providers may have taken for each line (nothing is known of the answers)."""
        lines = [line for line in event.plan.lines if line.vertical in self.providers]
        await asyncio.gather(
            *(self.providers[line.vertical].cancel_unconfirmed(event.order_id, line) for line in lines)
        )
        log.warning(
            "order failed by the sweeper during an interrupted dispatch: its lines cancelled",
            extra={"order_id": event.order_id, "lines": len(lines)},
        )

    async def _dispatch(self, order_id: str, line: ev.PlanLine) -> Dispatch | ProviderError:
        provider = self.providers.get(line.vertical)
        if provider is None:
            return ProviderError(f"no provider for vertical {line.vertical!r}")
        try:
            return await provider.dispatch(order_id, line)
        except ProviderError as exc:
            return exc

    async def fulfil(self, event: ev.PaymentAuthorized) -> Outcome:
        lines = list(event.plan.lines)
        results = await asyncio.gather(*(self._dispatch(event.order_id, line) for line in lines))
        failures = [(line, r) for line, r in zip(lines, results, strict=True) if isinstance(r, ProviderError)]
        if not failures:
            records = [
                ev.FulfilmentRecord(
                    sku=line.sku, vertical=line.vertical, status="DISPATCHED", provider_ref=r.provider_ref
                )
                for line, r in zip(lines, results, strict=True)
                if isinstance(r, Dispatch)
            ]
            return ev.FulfilmentCompleted(order_id=event.order_id, user_id=event.user_id, records=records)
        records = []
        for line, result in zip(lines, results, strict=True):
            if isinstance(result, Dispatch):
                await self.providers[line.vertical].cancel(event.order_id, result)
                records.append(
                    ev.FulfilmentRecord(
                        sku=line.sku,
                        vertical=line.vertical,
                        status="CANCELLED",
                        provider_ref=result.provider_ref,
                    )
                )
            else:
                records.append(
                    ev.FulfilmentRecord(
                        sku=line.sku, vertical=line.vertical, status="FAILED", error=str(result)
                    )
                )
        reason = "; ".join(str(err) for _, err in failures)
        log.info("fulfilment failed, dispatched lines cancelled", extra={"order_id": event.order_id})
        return ev.FulfilmentFailed(
            order_id=event.order_id, user_id=event.user_id, records=records, reason=reason
        )
