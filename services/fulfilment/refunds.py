"""Fulfilment's side of a refund: cancel what can still be cancelled, record what cannot.

On OrderRefundRequested, every line the order's remembered outcome (`decision:fulfilment:<order>`)
dispatched is cancelled at its provider; a provider that can no longer cancel it (the ride was taken,
the food delivered) answers ProviderError, and the line is recorded NOT_CANCELLED with that answer. The
money does not wait for this: payment refunds in full either way (docs/reliability.md, Refunds). The
result is remembered by order id (`decision:fulfilment-refund:<order>`, SET NX), so a redelivered request
re-emits the same FulfilmentCancelled instead of asking the providers again.
"""

from __future__ import annotations

import asyncio
import logging

from yiju.common.consumer import EventContext
from yiju.common.decisions import DecisionStore
from yiju.fulfilment.providers import Dispatch, Provider, ProviderError
from yiju.gen.events.v1 import order_events_pb2 as ev

log = logging.getLogger(__name__)
CANCELLED = "CANCELLED"
NOT_CANCELLED = "NOT_CANCELLED"


class RefundCancellations:
    def __init__(
        self, providers: dict[str, Provider], outcomes: DecisionStore, cancellations: DecisionStore
    ) -> None:
        self.providers = providers
        self.outcomes = outcomes  # fulfilment's remembered dispatch outcome per order
        self.cancellations = cancellations  # what a refund cancelled, per order

    async def on_refund_requested(self, event: ev.OrderRefundRequested, ctx: EventContext) -> None:
        done = await self.cancellations.get(event.order_id)
        if done is None:
            done = await self.cancellations.remember(event.order_id, await self.cancel(event))
        ctx.emit(done, event.order_id)

    async def _cancel_one(self, order_id: str, record: ev.FulfilmentRecord) -> ev.FulfilmentRecord:
        provider = self.providers.get(record.vertical)
        try:
            if provider is None:
                raise ProviderError(f"no provider for vertical {record.vertical!r}")
            await provider.cancel(order_id, Dispatch(record.provider_ref))
        except ProviderError as exc:
            return ev.FulfilmentRecord(
                sku=record.sku,
                vertical=record.vertical,
                status=NOT_CANCELLED,
                provider_ref=record.provider_ref,
                error=str(exc),
            )
        return ev.FulfilmentRecord(
            sku=record.sku, vertical=record.vertical, status=CANCELLED, provider_ref=record.provider_ref
        )

    async def cancel(self, event: ev.OrderRefundRequested) -> ev.FulfilmentCancelled:
        """Cancels each dispatched line of the order (in parallel); nothing to cancel when the order's
        outcome is not a completed dispatch (or is no longer remembered)."""
        outcome = await self.outcomes.get(event.order_id)
        records = (
            [r for r in outcome.records if r.status == "DISPATCHED"]
            if isinstance(outcome, ev.FulfilmentCompleted)
            else []
        )
        if not isinstance(outcome, ev.FulfilmentCompleted):
            log.warning(
                "refund of an order without a remembered dispatch: nothing to cancel",
                extra={"order_id": event.order_id},
            )
        results = await asyncio.gather(*(self._cancel_one(event.order_id, r) for r in records))
        kept = [r for r in results if r.status == NOT_CANCELLED]
        if kept:
            log.warning(
                "refund: some lines could not be cancelled",
                extra={"order_id": event.order_id, "skus": [r.sku for r in kept]},
            )
        return ev.FulfilmentCancelled(order_id=event.order_id, user_id=event.user_id, records=results)
