"""Typed views of the intent service's JSON: :class:`Order` and its parts, :class:`Accepted`.

Every model keeps the JSON it was built from in ``raw`` so nothing the server adds later is lost, and the
parsers are lenient: a missing field becomes ``None``, ``0`` or an empty tuple rather than an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

JSON = dict[str, Any]


class OrderStatus(StrEnum):
    """The statuses an order moves through (the server may add more; ``Order.status`` is a plain str)."""

    ACCEPTED = "ACCEPTED"
    PLANNED = "PLANNED"
    AWAITING_CONFIRMATION = "AWAITING_CONFIRMATION"
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


SUCCESS_STATUSES: frozenset[str] = frozenset({OrderStatus.COMPLETED})
FAILURE_STATUSES: frozenset[str] = frozenset(
    {
        OrderStatus.NEEDS_CLARIFICATION,
        OrderStatus.REJECTED,
        OrderStatus.PAYMENT_DECLINED,
        OrderStatus.FAILED,
        OrderStatus.CANCELLED,
    }
)
REFUNDED_STATUSES: frozenset[str] = frozenset({OrderStatus.REFUNDED})
"""After COMPLETED, a refund: REFUND_PENDING (not terminal) then REFUNDED (terminal, not a failure)."""
TERMINAL_STATUSES: frozenset[str] = SUCCESS_STATUSES | FAILURE_STATUSES | REFUNDED_STATUSES
WAITING_STATUSES: frozenset[str] = frozenset({OrderStatus.AWAITING_CONFIRMATION})
SETTLED_STATUSES: frozenset[str] = TERMINAL_STATUSES | WAITING_STATUSES
"""Terminal or waiting: where an order stops moving on its own (the default for ``wait_for_order``)."""


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _int(value: Any) -> int:
    if isinstance(value, bool) or value is None:
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _obj(value: Any) -> JSON:
    return dict(value) if isinstance(value, Mapping) else {}


def _objs(value: Any) -> list[JSON]:
    return [dict(item) for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


@dataclass(frozen=True, slots=True)
class Accepted:
    """The answer to ``submit_intent``: the order id and the idempotency key that was sent."""

    order_id: str
    status: str
    idempotency_key: str | None = None
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], idempotency_key: str | None = None) -> Accepted:
        return cls(
            order_id=_str(data.get("order_id")),
            status=_str(data.get("status")) or OrderStatus.ACCEPTED,
            idempotency_key=idempotency_key,
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One item of the plan; prices are integer fen."""

    sku: str
    name: str
    vertical: str
    quantity: int
    unit_price_fen: int
    line_total_fen: int
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OrderLine:
        return cls(
            sku=_str(data.get("sku")),
            name=_str(data.get("name")),
            vertical=_str(data.get("vertical")),
            quantity=_int(data.get("quantity")),
            unit_price_fen=_int(data.get("unit_price_fen")),
            line_total_fen=_int(data.get("line_total_fen")),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class Payment:
    """The payment of an order: authorised, then captured on fulfilment."""

    status: str
    authorized_fen: int
    captured_fen: int
    refunded_fen: int = 0
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Payment:
        return cls(
            status=_str(data.get("status")),
            authorized_fen=_int(data.get("authorized_fen")),
            captured_fen=_int(data.get("captured_fen")),
            refunded_fen=_int(data.get("refunded_fen")),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class Fulfilment:
    """The fulfilment of one SKU by its provider."""

    sku: str
    status: str
    provider_ref: str | None
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fulfilment:
        return cls(
            sku=_str(data.get("sku")),
            status=_str(data.get("status")),
            provider_ref=_opt_str(data.get("provider_ref")),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One status change; ``at`` is the server's timestamp string (ISO 8601)."""

    status: str
    at: str
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HistoryEntry:
        return cls(status=_str(data.get("status")), at=_str(data.get("at")), raw=dict(data))

    @property
    def timestamp(self) -> datetime | None:
        """``at`` as a datetime, or ``None`` if it is not ISO 8601."""
        try:
            return datetime.fromisoformat(self.at)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Order:
    """An order as the intent service reports it. Amounts are integer fen (1 CNY = 100 fen)."""

    order_id: str
    user_id: str
    text: str
    status: str
    reason: str | None = None
    lines: tuple[OrderLine, ...] = ()
    subtotal_fen: int = 0
    subsidy_fen: int = 0
    total_fen: int = 0
    payment: Payment | None = None
    fulfilment: tuple[Fulfilment, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    trace_id: str | None = None
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Order:
        payment = data.get("payment")
        return cls(
            order_id=_str(data.get("order_id")),
            user_id=_str(data.get("user_id")),
            text=_str(data.get("text")),
            status=_str(data.get("status")),
            reason=_opt_str(data.get("reason")),
            lines=tuple(OrderLine.from_json(item) for item in _objs(data.get("lines"))),
            subtotal_fen=_int(data.get("subtotal_fen")),
            subsidy_fen=_int(data.get("subsidy_fen")),
            total_fen=_int(data.get("total_fen")),
            payment=Payment.from_json(_obj(payment)) if isinstance(payment, Mapping) else None,
            fulfilment=tuple(Fulfilment.from_json(item) for item in _objs(data.get("fulfilment"))),
            history=tuple(HistoryEntry.from_json(item) for item in _objs(data.get("history"))),
            trace_id=_opt_str(data.get("trace_id")),
            raw=dict(data),
        )

    @property
    def is_terminal(self) -> bool:
        """The order will not change any more."""
        return self.status in TERMINAL_STATUSES

    @property
    def is_waiting(self) -> bool:
        """The order waits for the user to confirm or cancel it."""
        return self.status in WAITING_STATUSES

    @property
    def is_success(self) -> bool:
        return self.status in SUCCESS_STATUSES

    @property
    def is_failure(self) -> bool:
        return self.status in FAILURE_STATUSES

    def to_json(self) -> JSON:
        """The JSON the server sent (a copy)."""
        return dict(self.raw)
