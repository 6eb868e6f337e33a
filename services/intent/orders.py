"""Order actions shared by the HTTP and gRPC APIs: read, confirm, cancel."""

from __future__ import annotations

from typing import Any

from yiju.common.broker import EventPublisher
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.intent.ingest import IngestError
from yiju.intent.store import OrderStore


class OrderActions:
    def __init__(self, store: OrderStore, publisher: EventPublisher) -> None:
        self.store = store
        self.publisher = publisher

    async def get(self, order_id: str, owner: str | None = None) -> dict[str, Any]:
        """The order; for anyone but its owner (when one is given) it does not exist."""
        order = await self.store.get(order_id)
        if order is None or (owner is not None and order["user_id"] != owner):
            raise IngestError("not_found", f"order {order_id} not found")
        return order

    async def _decide(self, order_id: str, decision: str, owner: str | None) -> dict[str, Any]:
        order = await self.get(order_id, owner)
        ok, detail = await self.store.decide(order_id, decision)
        if not ok:
            raise IngestError(
                "not_awaiting_confirmation",
                f"order {order_id} is not awaiting confirmation ({detail})",
                order_id,
            )
        user_id = order["user_id"]
        if decision == "confirmed":
            await self.publisher.publish(ev.OrderConfirmed(order_id=order_id, user_id=user_id), order_id)
        else:
            await self.publisher.publish(
                ev.OrderCancelled(order_id=order_id, user_id=user_id, reason="cancelled by the user"),
                order_id,
            )
        return await self.get(order_id)

    async def confirm(self, order_id: str, owner: str | None = None) -> dict[str, Any]:
        return await self._decide(order_id, "confirmed", owner)

    async def cancel(self, order_id: str, owner: str | None = None) -> dict[str, Any]:
        return await self._decide(order_id, "cancelled", owner)
