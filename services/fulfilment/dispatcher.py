"""Fulfilment: dispatch every line of an authorized order to its vertical's provider, all or nothing.

If any line fails, the lines already dispatched are cancelled (compensation) and the order fails;
payment then voids the authorization. The outcome is remembered by order id, so a redelivered
event re-emits the same outcome instead of dispatching again.
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


class Dispatcher:
    def __init__(self, providers: dict[str, Provider], decisions: DecisionStore) -> None:
        self.providers = providers
        self.decisions = decisions

    def router(self) -> EventRouter:
        router = EventRouter(FULFILMENT)
        router.on(ev.PaymentAuthorized)(self.on_payment_authorized)
        return router

    async def on_payment_authorized(self, event: ev.PaymentAuthorized, ctx: EventContext) -> None:
        outcome = await self.decisions.get(event.order_id)
        if outcome is None:
            outcome = await self.decisions.remember(event.order_id, await self.fulfil(event))
        ctx.emit(outcome, event.order_id)

    async def _dispatch(self, order_id: str, line: ev.PlanLine) -> Dispatch | ProviderError:
        provider = self.providers.get(line.vertical)
        if provider is None:
            return ProviderError(f"no provider for vertical {line.vertical!r}")
        try:
            return await provider.dispatch(order_id, line)
        except ProviderError as exc:
            return exc

    async def fulfil(self, event: ev.PaymentAuthorized) -> ev.FulfilmentCompleted | ev.FulfilmentFailed:
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
