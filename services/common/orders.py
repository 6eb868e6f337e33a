"""Order statuses and how they rank, so events applied out of order never move an order backwards.

A refund is the one way past a terminal status: a COMPLETED order can move on to REFUND_PENDING (the
refund was asked for) and REFUNDED (the money is back in the wallet), ranked above every terminal status;
no other terminal status ever moves (see `may_move` and services/intent/lua/apply_event.lua).
"""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    ACCEPTED = "ACCEPTED"
    AWAITING_MODEL = "AWAITING_MODEL"  # planning asked the model and waits for its answer (until a deadline)
    AWAITING_CONFIRMATION = "AWAITING_CONFIRMATION"
    PLANNED = "PLANNED"
    AUTHORIZED = "AUTHORIZED"
    FULFILLED = "FULFILLED"
    COMPLETED = "COMPLETED"
    NEEDS_CLARIFICATION = "NEEDS_CLARIFICATION"
    REJECTED = "REJECTED"
    PAYMENT_DECLINED = "PAYMENT_DECLINED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    REFUND_PENDING = "REFUND_PENDING"
    REFUNDED = "REFUNDED"


TERMINAL_RANK = 100
RANK: dict[OrderStatus, int] = {
    OrderStatus.ACCEPTED: 10,
    OrderStatus.AWAITING_MODEL: 12,
    OrderStatus.AWAITING_CONFIRMATION: 15,
    OrderStatus.PLANNED: 20,
    OrderStatus.AUTHORIZED: 30,
    OrderStatus.FULFILLED: 40,
    **{
        s: TERMINAL_RANK
        for s in (
            OrderStatus.COMPLETED,
            OrderStatus.NEEDS_CLARIFICATION,
            OrderStatus.REJECTED,
            OrderStatus.PAYMENT_DECLINED,
            OrderStatus.FAILED,
            OrderStatus.CANCELLED,
        )
    },
    OrderStatus.REFUND_PENDING: TERMINAL_RANK + 10,
    OrderStatus.REFUNDED: TERMINAL_RANK + 20,
}
# Statuses after COMPLETED: only a completed order (or one whose refund is pending) may move to them.
REFUND_STATUSES = frozenset({OrderStatus.REFUND_PENDING, OrderStatus.REFUNDED})
REFUNDABLE_FROM = frozenset({OrderStatus.COMPLETED, OrderStatus.REFUND_PENDING})
# REFUND_PENDING is not terminal: watchers follow it until REFUNDED.
TERMINAL = frozenset(s for s, r in RANK.items() if r == TERMINAL_RANK) | {OrderStatus.REFUNDED}
WAITING = frozenset({OrderStatus.AWAITING_CONFIRMATION})


def may_move(current: str, current_rank: int, new_rank: int) -> bool:
    """Whether an order at `current` moves to a status ranked `new_rank` (the rule apply_event.lua keeps):
    forward only; a terminal order never moves, except a completed one on to its refund statuses."""
    if new_rank <= current_rank:
        return False
    return current_rank < TERMINAL_RANK or current in REFUNDABLE_FROM


def is_settled(status: str) -> bool:
    """Terminal, or waiting for the user: nothing more will happen on its own."""
    return status in TERMINAL or status in WAITING
