"""Reconciliation arithmetic: wallets and the subsidy budget from events and from ledger streams."""

from __future__ import annotations

from yiju.common.catalog import Campaign
from yiju.common.reconcile import (
    PAYMENT_SOURCE,
    PLANNING_SOURCE,
    EventsView,
    Wallet,
    compare_campaign,
    compare_payments,
    compare_wallets,
    ledger_subsidy,
    ledger_wallet,
)
from yiju.gen.events.v1 import order_events_pb2 as ev

CAMPAIGN = Campaign(
    id="spring", name="Spring", min_order_fen=3000, discount_fen=1000, budget_fen=10_000, per_user_max_uses=3
)


def plan(subsidy: int = 0, total: int = 5000) -> ev.Plan:
    return ev.Plan(subtotal_fen=total + subsidy, subsidy_fen=subsidy, total_fen=total)


def view(*events: tuple[str, object]) -> EventsView:
    out = EventsView()
    for source, message in events:
        out.add(source, message)  # type: ignore[arg-type]
    return out


def test_events_give_holds_spending_and_releases_once_per_order() -> None:
    events = view(
        (PAYMENT_SOURCE, ev.PaymentAuthorized(order_id="o1", user_id="u", amount_fen=500)),
        (PAYMENT_SOURCE, ev.PaymentAuthorized(order_id="o1", user_id="u", amount_fen=500)),  # redelivered
        (PAYMENT_SOURCE, ev.PaymentCaptured(order_id="o1", user_id="u", amount_fen=500)),
        (PAYMENT_SOURCE, ev.PaymentAuthorized(order_id="o2", user_id="u", amount_fen=300)),
        (PAYMENT_SOURCE, ev.PaymentVoided(order_id="o2", user_id="u", amount_fen=300)),
        (PAYMENT_SOURCE, ev.PaymentAuthorized(order_id="o3", user_id="u", amount_fen=200)),
        (PAYMENT_SOURCE, ev.PaymentAuthorized(order_id="o4", user_id="u", amount_fen=100)),
        (PAYMENT_SOURCE, ev.PaymentCaptured(order_id="o4", user_id="u", amount_fen=100)),
        (PAYMENT_SOURCE, ev.PaymentVoided(order_id="o4", user_id="u", amount_fen=100)),  # refund
        ("yiju/intent-sweeper", ev.PaymentAuthorized(order_id="o9", user_id="u", amount_fen=999)),
    )
    assert events.ignored == 1
    assert events.wallets({"u": 10_000})["u"] == Wallet(balance=10_000 - 500 - 200, held=200, spent=500)
    assert [events.payment_status(o) for o in ("o1", "o2", "o3", "o4")] == [
        "CAPTURED",
        "VOIDED",
        "AUTHORIZED",
        "REFUNDED",
    ]


def test_the_ledger_replays_to_the_same_wallet() -> None:
    entries = [
        {"type": "authorize", "order": "o1", "amount": "500"},
        {"type": "capture", "order": "o1", "amount": "500"},
        {"type": "authorize", "order": "o2", "amount": "300"},
        {"type": "void", "order": "o2", "amount": "300"},
        {"type": "authorize", "order": "o3", "amount": "200"},
        {"type": "authorize", "order": "o4", "amount": "100"},
        {"type": "capture", "order": "o4", "amount": "100"},
        {"type": "refund", "order": "o4", "amount": "100"},
    ]
    assert ledger_wallet(entries, 10_000) == Wallet(balance=9300, held=200, spent=500)


def test_wallet_differences_name_the_field_and_the_fen() -> None:
    stored = {"u": {"opening": "10000", "balance": "9300", "held": "150", "spent": "500"}}
    diffs, table = compare_wallets(stored, {"u": Wallet(9300, 200, 500)}, {"u": Wallet(9300, 200, 500)})
    assert [(d.scope, d.field, d.diff_fen) for d in diffs] == [("wallet:u", "held", 50)]
    assert table["u"]["held_events"] == 200
    assert compare_wallets(stored | {"u": {**stored["u"], "held": "200"}}, {}, {})[0] == []


def test_subsidies_granted_then_released_are_not_spent() -> None:
    events = view(
        (PLANNING_SOURCE, ev.PlanCreated(order_id="o1", user_id="a", plan=plan(1000))),
        (PLANNING_SOURCE, ev.PlanAwaitingConfirmation(order_id="o2", user_id="a", plan=plan(1000))),
        (PLANNING_SOURCE, ev.PlanCreated(order_id="o2", user_id="a", plan=plan(1000))),  # confirmed
        (PLANNING_SOURCE, ev.PlanCreated(order_id="o3", user_id="b", plan=plan(1000))),
        (PAYMENT_SOURCE, ev.PaymentDeclined(order_id="o3", user_id="b")),
        (PLANNING_SOURCE, ev.PlanAwaitingConfirmation(order_id="o4", user_id="b", plan=plan(1000))),
        ("yiju/intent", ev.OrderCancelled(order_id="o4", user_id="b")),
        (PLANNING_SOURCE, ev.PlanAwaitingConfirmation(order_id="o5", user_id="b", plan=plan(1000))),
        (PLANNING_SOURCE, ev.PlanRejected(order_id="o5", user_id="b", code="confirmation_expired")),
    )
    assert events.net_grants() == {"o1": ("a", 1000), "o2": ("a", 1000)}
    ledger = ledger_subsidy(
        [
            {"type": "subsidy_granted", "order": o, "user": u, "amount": "1000"}
            for o, u in [("o1", "a"), ("o2", "a"), ("o3", "b"), ("o4", "b"), ("o5", "b")]
        ]
        + [
            {"type": "subsidy_released", "order": o, "user": "b", "amount": "1000"}
            for o in ("o3", "o4", "o5")
        ]
    )
    grants = {"o1": "1000", "o2": "1000", "o3": "released", "o4": "released", "o5": "released"}
    diffs, summary = compare_campaign(CAMPAIGN, 8000, grants, {"a": 2, "b": 0}, events, ledger)
    assert diffs == []
    assert summary["spent_fen"] == 2000 and summary["overspent_fen"] == 0 and summary["double_grants"] == 0
    diffs, _ = compare_campaign(CAMPAIGN, 7000, grants, {"a": 2}, events, ledger)
    assert [(d.field, d.diff_fen) for d in diffs] == [("budget_left", 1000)]


def test_an_overspent_budget_and_a_double_grant_are_reported() -> None:
    events = view(
        *((PLANNING_SOURCE, ev.PlanCreated(order_id=f"o{i}", user_id="a", plan=plan(4000))) for i in range(3))
    )
    ledger = ledger_subsidy(
        [{"type": "subsidy_granted", "order": f"o{i}", "user": "a", "amount": "4000"} for i in (0, 1, 2, 2)]
    )
    _, summary = compare_campaign(
        CAMPAIGN, -2000, {f"o{i}": "4000" for i in range(3)}, {"a": 3}, events, ledger
    )
    assert summary["overspent_fen"] == 2000 and summary["double_grants"] == 1


def test_payment_status_in_redis_must_agree_with_the_events() -> None:
    events = view(
        (PAYMENT_SOURCE, ev.PaymentAuthorized(order_id="o1", user_id="u", amount_fen=500)),
        (PAYMENT_SOURCE, ev.PaymentCaptured(order_id="o1", user_id="u", amount_fen=500)),
        (PAYMENT_SOURCE, ev.PaymentAuthorized(order_id="o2", user_id="u", amount_fen=300)),
    )
    diffs = compare_payments({"o1": "CAPTURED", "o2": None}, events)
    assert [(d.scope, d.redis, d.events, d.diff_fen) for d in diffs] == [
        ("payment:o2", None, "AUTHORIZED", 300)
    ]
