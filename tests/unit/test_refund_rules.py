"""Refund rules without a platform: who may refund, the status machine, each service's handler, and the
reconcile arithmetic for refunds, trimmed ledgers and per-day spend counters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf.message import Message

from yiju.common.auth import OPERATOR_ROLE, Principal, issue_token, verify_token
from yiju.common.consumer import EventContext, PermanentError
from yiju.common.envelope import EventMeta
from yiju.common.ledger_replay import Wallet, replay_ledger
from yiju.common.orders import RANK, TERMINAL, OrderStatus, is_settled, may_move
from yiju.common.reconcile import (
    PAYMENT_SOURCE,
    EventsView,
    compare_daily,
    compare_payments,
    complete_event_wallets,
)
from yiju.common.settings import Settings
from yiju.fulfilment.providers import Dispatch, ProviderError
from yiju.fulfilment.refunds import RefundCancellations
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.intent.ingest import IngestError
from yiju.intent.orders import OrderActions
from yiju.intent.store import RefundMark
from yiju.payment.payments import Payments
from yiju.payment.wallet import Movement
from yiju.planning.refunds import SubsidyRefunds

S = OrderStatus
COMPLETED_AT = "2026-12-01T10:00:00.000Z"
COMPLETED_S = datetime(2026, 12, 1, 10, tzinfo=UTC).timestamp()
WINDOW_S = 3600


def ctx(order_id: str = "o1") -> EventContext:
    return EventContext(EventMeta("id", "t", "yiju/test", COMPLETED_AT, order_id, "topic", 0, 0, {}))


# ----- the status machine


def test_only_a_completed_order_moves_past_terminal_to_its_refund_statuses() -> None:
    pending, refunded = RANK[S.REFUND_PENDING], RANK[S.REFUNDED]
    assert may_move(S.COMPLETED, RANK[S.COMPLETED], pending)
    assert may_move(S.REFUND_PENDING, pending, refunded)
    assert not may_move(S.REFUNDED, refunded, pending)  # never backwards
    for failed in (S.FAILED, S.CANCELLED, S.PAYMENT_DECLINED, S.REJECTED, S.NEEDS_CLARIFICATION):
        assert not may_move(failed, RANK[failed], refunded), failed
    assert not is_settled(S.REFUND_PENDING)  # watchers follow a pending refund to its end
    assert S.REFUNDED in TERMINAL and S.REFUND_PENDING not in TERMINAL


# ----- who may refund (intent)


class FakeStore:
    def __init__(self, status: str = "COMPLETED", owner: str = "u-1") -> None:
        self.doc: dict[str, Any] = {
            "order_id": "o1",
            "user_id": owner,
            "status": status,
            "history": [{"status": "COMPLETED", "at": COMPLETED_AT}] if status == "COMPLETED" else [],
        }
        self.marks: list[tuple[str, str, str]] = []

    async def get(self, order_id: str) -> dict[str, Any] | None:
        return dict(self.doc) if order_id == "o1" else None

    async def request_refund(self, order_id: str, by: str, reason: str, at: str) -> RefundMark:
        if self.doc["status"] == "COMPLETED":
            self.doc["status"] = "REFUND_PENDING"
            self.marks.append((by, reason, at))
            return RefundMark("new", "REFUND_PENDING", at, by, reason)
        by0, reason0, at0 = self.marks[0] if self.marks else ("", "", "")
        return RefundMark("exists", self.doc["status"], at0, by0, reason0)


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[Message] = []

    async def publish(self, message: Message, order_id: str, **_: Any) -> None:
        self.published.append(message)


def actions(store: FakeStore) -> tuple[OrderActions, FakePublisher]:
    publisher = FakePublisher()
    return OrderActions(store, publisher, refund_window_s=WINDOW_S), publisher  # type: ignore[arg-type]


async def test_the_owner_refunds_within_the_window_and_asking_again_answers_the_same() -> None:
    store = FakeStore()
    orders, publisher = actions(store)
    user = Principal("u-1", "jwt")
    first = await orders.refund("o1", user, "cold tea", now_s=COMPLETED_S + WINDOW_S - 1)
    again = await orders.refund("o1", user, "other", now_s=COMPLETED_S + 10 * WINDOW_S)  # window passed
    assert first["status"] == again["status"] == "REFUND_PENDING"
    assert [m[:2] for m in store.marks] == [("user:u-1", "cold tea")]  # marked once
    assert [type(m) for m in publisher.published] == [ev.OrderRefundRequested] * 2
    assert publisher.published[0] == publisher.published[1]  # the same event (and so the same event id)
    assert publisher.published[0].requested_by == "user:u-1" and publisher.published[0].reason == "cold tea"


async def test_past_the_window_the_owner_is_refused_and_an_operator_is_not() -> None:
    orders, publisher = actions(FakeStore())
    with pytest.raises(IngestError) as refused:
        await orders.refund("o1", Principal("u-1", "jwt"), now_s=COMPLETED_S + WINDOW_S + 1)
    assert refused.value.code == "refund_window_closed" and "window" in refused.value.message
    assert publisher.published == []
    operator = Principal("ops-1", "jwt", frozenset({OPERATOR_ROLE}))
    order = await orders.refund("o1", operator, "goodwill", now_s=COMPLETED_S + 100 * WINDOW_S)
    assert order["status"] == "REFUND_PENDING"
    assert publisher.published[0].requested_by == "operator:ops-1"
    assert publisher.published[0].user_id == "u-1"  # the money goes back to the payer, not the operator


async def test_someone_elses_order_does_not_exist_and_an_unfinished_one_is_not_refundable() -> None:
    orders, _ = actions(FakeStore())
    with pytest.raises(IngestError) as other:
        await orders.refund("o1", Principal("u-2", "jwt"), now_s=COMPLETED_S)
    assert other.value.code == "not_found"
    orders, publisher = actions(FakeStore(status="FULFILLED"))
    with pytest.raises(IngestError) as early:
        await orders.refund("o1", Principal("u-1", "jwt"), now_s=COMPLETED_S)
    assert early.value.code == "not_refundable" and publisher.published == []


def test_the_operator_role_comes_from_the_token() -> None:
    settings = Settings(jwt_secret="s" * 32)
    assert verify_token(issue_token("ops-1", settings, roles=(OPERATOR_ROLE,)), settings).is_operator
    assert not verify_token(issue_token("u-1", settings), settings).is_operator


# ----- payment


class FakeWallets:
    def __init__(self, status: str) -> None:
        self.status = status

    async def refund(self, user_id: str, order_id: str) -> Movement:
        return Movement(self.status, 4200)


async def test_payment_refunds_a_captured_order_and_dead_letters_anything_else() -> None:
    request = ev.OrderRefundRequested(order_id="o1", user_id="u-1", requested_by="user:u-1", reason="r")
    c = ctx()
    await Payments(None, FakeWallets("REFUNDED"), None).on_refund_requested(request, c)  # type: ignore[arg-type]
    [(refunded, key)] = c.emitted
    assert isinstance(refunded, ev.PaymentRefunded) and key == "o1"
    assert (refunded.user_id, refunded.amount_fen) == ("u-1", 4200)
    for status in ("AUTHORIZED", "VOIDED", "NONE"):
        with pytest.raises(PermanentError, match=status):
            await Payments(None, FakeWallets(status), None).on_refund_requested(request, ctx())  # type: ignore[arg-type]


# ----- fulfilment


class Provider:
    def __init__(self, vertical: str, refuse: bool = False) -> None:
        self.vertical, self.refuse, self.cancelled = vertical, refuse, []  # type: ignore[var-annotated]

    async def cancel(self, order_id: str, dispatch: Dispatch) -> None:
        if self.refuse:
            raise ProviderError("the ride already took place")
        self.cancelled.append(dispatch.provider_ref)


class MemoryDecisions:
    def __init__(self, initial: Message | None = None) -> None:
        self.value = initial

    async def get(self, order_id: str) -> Message | None:
        return self.value

    async def remember(self, order_id: str, message: Message) -> Message:
        if self.value is None:
            self.value = message
        return self.value


async def test_fulfilment_cancels_what_it_can_records_what_it_cannot_and_remembers_it() -> None:
    dispatched = ev.FulfilmentCompleted(
        order_id="o1",
        records=[
            ev.FulfilmentRecord(sku="tea", vertical="food", status="DISPATCHED", provider_ref="FD-1"),
            ev.FulfilmentRecord(sku="taxi", vertical="ride", status="DISPATCHED", provider_ref="RIDE-1"),
        ],
    )
    food, ride = Provider("food"), Provider("ride", refuse=True)
    done = MemoryDecisions()
    refunds = RefundCancellations({"food": food, "ride": ride}, MemoryDecisions(dispatched), done)  # type: ignore[arg-type]
    request = ev.OrderRefundRequested(order_id="o1", user_id="u-1")
    first, again = ctx(), ctx()
    await refunds.on_refund_requested(request, first)
    await refunds.on_refund_requested(request, again)  # redelivered: the remembered answer
    [(cancelled, _)] = first.emitted
    assert [(r.sku, r.status) for r in cancelled.records] == [("tea", "CANCELLED"), ("taxi", "NOT_CANCELLED")]
    assert "already took place" in cancelled.records[1].error
    assert again.emitted == first.emitted and food.cancelled == ["FD-1"]


async def test_planning_gives_the_subsidy_back_on_a_refund() -> None:
    released: list[tuple[str, str]] = []

    class Subsidies:
        async def release(self, order_id: str, user_id: str) -> int:
            released.append((order_id, user_id))
            return 1000

    await SubsidyRefunds(Subsidies()).on_payment_refunded(  # type: ignore[arg-type]
        ev.PaymentRefunded(order_id="o1", user_id="u-1", amount_fen=4200), ctx()
    )
    assert released == [("o1", "u-1")]


# ----- reconcile


def entry(kind: str, order: str, amount: int, seq: int, after: Wallet) -> dict[str, str]:
    return {
        "type": kind,
        "order": order,
        "amount": str(amount),
        "seq": str(seq),
        "balance": str(after.balance),
        "held": str(after.held),
        "spent": str(after.spent),
    }


def ledger_of(opening: int, moves: list[tuple[str, str, int]]) -> list[dict[str, str]]:
    wallet, out = Wallet(balance=opening), []
    for seq, (kind, order, amount) in enumerate(moves, start=1):
        wallet = wallet.moved(kind, amount)
        out.append(entry(kind, order, amount, seq, wallet))
    return out


MOVES = [
    ("authorize", "o1", 500),
    ("capture", "o1", 500),
    ("authorize", "o2", 300),
    ("capture", "o2", 300),
    ("refund", "o2", 300),
    ("authorize", "o3", 200),
]


def test_a_trimmed_ledger_replays_from_its_first_kept_entry_to_the_same_wallet() -> None:
    full = ledger_of(10_000, MOVES)
    whole = replay_ledger(full, 10_000)
    trimmed = replay_ledger(full[3:], 10_000)  # the three oldest entries trimmed away
    assert whole.wallet == trimmed.wallet == Wallet(balance=9300, held=200, spent=500)
    assert not whole.trimmed and trimmed.trimmed
    assert whole.breaks == trimmed.breaks == []


def test_a_ledger_entry_that_disagrees_or_a_hole_in_the_ledger_is_a_break() -> None:
    full = ledger_of(10_000, MOVES)
    tampered = [*full[:2], {**full[2], "held": "999"}, *full[3:]]
    assert len(replay_ledger(tampered, 10_000).breaks) == 1
    holed = [*full[:3], *full[4:]]
    assert any("missing" in b for b in replay_ledger(holed, 10_000).breaks)


def test_refund_events_give_the_status_and_the_wallet_back() -> None:
    events = EventsView()
    for message in (
        ev.PaymentAuthorized(order_id="o2", user_id="u", amount_fen=300),
        ev.PaymentCaptured(order_id="o2", user_id="u", amount_fen=300),
        ev.PaymentRefunded(order_id="o2", user_id="u", amount_fen=300),
    ):
        events.add(PAYMENT_SOURCE, message)
    assert events.payment_status("o2") == "REFUNDED"
    assert events.wallets({"u": 10_000})["u"] == Wallet(balance=10_000)
    assert "o2" in events.released  # the subsidy goes back too
    assert compare_payments({"o2": "REFUNDED"}, events) == []
    assert compare_payments({"o2": None}, events) == []  # a settled record that expired by its TTL
    assert [d.events for d in compare_payments({"o2": "CAPTURED"}, events)] == ["REFUNDED"]


def test_the_events_recompute_only_the_wallets_whose_whole_history_they_hold() -> None:
    events = EventsView()
    events.add(PAYMENT_SOURCE, ev.PaymentAuthorized(order_id="o3", user_id="u", amount_fen=200))
    full = ledger_of(10_000, MOVES)
    replays = {"u": replay_ledger(full, 10_000)}
    assert complete_event_wallets(events, {"u": 10_000}, replays) == {}  # o1 and o2's events are gone
    for order, amount in (("o1", 500), ("o2", 300)):
        events.add(PAYMENT_SOURCE, ev.PaymentAuthorized(order_id=order, user_id="u", amount_fen=amount))
    assert "u" in complete_event_wallets(events, {"u": 10_000}, replays)
    assert complete_event_wallets(events, {"u": 10_000}, {"u": replay_ledger(full[3:], 10_000)}) == {}


def test_a_per_day_counter_is_the_sum_of_that_days_live_payments() -> None:
    day = "daily:{u}:20261201"
    payments = [("CAPTURED", "500", day), ("REFUNDED", "300", day), ("AUTHORIZED", "200", day)]
    payments += [("VOIDED", "100", day), ("DECLINED", "900", None), ("CAPTURED", "50", "daily:{u}:20261130")]
    assert compare_daily({day: 700}, payments) == []
    [diff] = compare_daily({day: 1000}, payments)  # a refund that did not give the day back
    assert (diff.scope, diff.redis, diff.events, diff.diff_fen) == (day, 1000, 700, 300)
