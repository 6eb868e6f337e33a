"""Order actions shared by the HTTP and gRPC APIs: read, confirm, cancel, refund."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from yiju.common.auth import Principal
from yiju.common.broker import EventPublisher
from yiju.common.envelope import now_iso
from yiju.common.orders import REFUND_STATUSES, OrderStatus
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.intent.ingest import IngestError
from yiju.intent.store import OrderStore

DEFAULT_REFUND_WINDOW_S = 24 * 3600
MAX_REFUND_REASON = 500


def completed_at_s(order: dict[str, Any]) -> float | None:
    """When the order became COMPLETED (its history entry), in epoch seconds."""
    for entry in order.get("history", []):
        if entry.get("status") == OrderStatus.COMPLETED:
            try:
                return datetime.fromisoformat(entry["at"].replace("Z", "+00:00")).timestamp()
            except (KeyError, ValueError):
                return None
    return None


class OrderActions:
    def __init__(
        self,
        store: OrderStore,
        publisher: EventPublisher,
        *,
        refund_window_s: int = DEFAULT_REFUND_WINDOW_S,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.refund_window_s = refund_window_s

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

    async def refund(
        self, order_id: str, who: Principal, reason: str = "", now_s: float | None = None
    ) -> dict[str, Any]:
        """Asks for the full refund of a COMPLETED order: its owner within the refund window, or an
        operator at any time. The order is marked REFUND_PENDING once (request_refund.lua) and
        OrderRefundRequested is published; asking again answers the same order and publishes the same
        event (same event id: consumers drop the repeat; it also covers a crash before the publish)."""
        reason = reason.strip()
        if len(reason) > MAX_REFUND_REASON:
            raise IngestError("invalid_reason", f"reason is over {MAX_REFUND_REASON} characters", order_id)
        order = await self.get(order_id, None if who.is_operator else who.user_id)
        status = order["status"]
        if status not in REFUND_STATUSES:  # a first request: the status, then the user's window
            if status != OrderStatus.COMPLETED:
                raise IngestError(
                    "not_refundable",
                    f"order {order_id} is {status}: only a COMPLETED order is refunded",
                    order_id,
                )
            if not who.is_operator:
                completed = completed_at_s(order)
                now = time.time() if now_s is None else now_s
                if completed is None or now - completed > self.refund_window_s:
                    raise IngestError(
                        "refund_window_closed",
                        f"order {order_id} completed more than {self.refund_window_s} s ago: "
                        "past the refund window, ask an operator",
                        order_id,
                    )
        by = f"operator:{who.user_id}" if who.is_operator else f"user:{who.user_id}"
        mark = await self.store.request_refund(order_id, by, reason or "requested", now_iso())
        if mark.outcome == "missing":
            raise IngestError("not_found", f"order {order_id} not found")
        if mark.outcome == "not_refundable":
            raise IngestError(
                "not_refundable",
                f"order {order_id} is {mark.status}: only a COMPLETED order is refunded",
                order_id,
            )
        if mark.requested_at:
            await self.publisher.publish(
                ev.OrderRefundRequested(
                    order_id=order_id,
                    user_id=order["user_id"],
                    requested_by=mark.requested_by,
                    reason=mark.reason,
                    requested_at=mark.requested_at,
                ),
                order_id,
            )
        return await self.get(order_id)
