"""Order statuses and how they rank, so events applied out of order never move an order backwards."""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    ACCEPTED = "ACCEPTED"
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


TERMINAL_RANK = 100
RANK: dict[OrderStatus, int] = {
    OrderStatus.ACCEPTED: 10,
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
}
TERMINAL = frozenset(s for s, r in RANK.items() if r == TERMINAL_RANK)
WAITING = frozenset({OrderStatus.AWAITING_CONFIRMATION})


def is_settled(status: str) -> bool:
    """Terminal, or waiting for the user: nothing more will happen on its own."""
    return status in TERMINAL or status in WAITING
