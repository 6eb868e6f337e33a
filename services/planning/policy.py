"""The user's spending mandate, applied to a priced plan."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from yiju.common.catalog import User
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


def check(plan: ev.Plan, user: User) -> Decision:
    if plan.total_fen > user.spend_limit_per_order_fen:
        return Decision(
            Verdict.REJECT,
            "over_order_limit",
            f"total {yuan(plan.total_fen)} exceeds the per-order limit of "
            f"{yuan(user.spend_limit_per_order_fen)}",
        )
    if plan.total_fen > user.confirm_above_fen:
        return Decision(
            Verdict.CONFIRM,
            "needs_confirmation",
            f"total {yuan(plan.total_fen)} is above the confirmation threshold of "
            f"{yuan(user.confirm_above_fen)}",
        )
    return Decision(Verdict.APPROVE)
