"""The user's spending mandate, applied to a priced plan."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from yiju.common.mandates import Mandate
from yiju.gen.events.v1 import order_events_pb2 as ev


class Verdict(StrEnum):
    APPROVE = "approve"
    CONFIRM = "confirm"
    REJECT = "reject"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    code: str = ""
    reason: str = ""


def yuan(fen: int) -> str:
    return f"¥{fen / 100:,.2f}"


def check(plan: ev.Plan, mandate: Mandate, spent_today_fen: int = 0) -> Decision:
    blocked = sorted({line.vertical for line in plan.lines} - mandate.allowed_verticals)
    if blocked:
        return Decision(
            Verdict.REJECT, "vertical_not_allowed", f"your mandate does not allow {', '.join(blocked)} orders"
        )
    if plan.total_fen > mandate.per_order_fen:
        return Decision(
            Verdict.REJECT,
            "over_order_limit",
            f"total {yuan(plan.total_fen)} exceeds the per-order limit of {yuan(mandate.per_order_fen)}",
        )
    if spent_today_fen + plan.total_fen > mandate.per_day_fen:
        left = max(mandate.per_day_fen - spent_today_fen, 0)
        return Decision(
            Verdict.REJECT,
            "over_daily_limit",
            f"total {yuan(plan.total_fen)} exceeds what is left of today's limit ({yuan(left)})",
        )
    if plan.total_fen > mandate.confirm_above_fen:
        return Decision(
            Verdict.CONFIRM,
            "needs_confirmation",
            f"total {yuan(plan.total_fen)} is above the confirmation threshold of "
            f"{yuan(mandate.confirm_above_fen)}",
        )
    return Decision(Verdict.APPROVE)
