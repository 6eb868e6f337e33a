"""Planning's side of a refund: the order's subsidy goes back to the campaign.

Policy (docs/reliability.md, Refunds): a refunded order keeps nothing of the campaign. On
PaymentRefunded its grant is released like a voided order's: the amount goes back to the budget and the
user's use count is given back (the user may use the campaign again). Subsidies.release is once per order
(the grant becomes 'released'), so a redelivery gives nothing back twice.
"""

from __future__ import annotations

import logging

from yiju.common.consumer import EventContext
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.planning.subsidy import Subsidies

log = logging.getLogger(__name__)


class SubsidyRefunds:
    def __init__(self, subsidies: Subsidies) -> None:
        self.subsidies = subsidies

    async def on_payment_refunded(self, event: ev.PaymentRefunded, ctx: EventContext) -> None:
        released = await self.subsidies.release(event.order_id, event.user_id)
        if released:
            log.info("subsidy released on refund", extra={"order_id": event.order_id, "amount_fen": released})
