"""Prices come from the catalog, mandates are enforced, and payment re-checks everything."""

from __future__ import annotations

import pytest

from tests.conftest import REPO
from yiju.common.catalog import Catalog
from yiju.common.mandates import Mandate, mandate_for
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.model_gateway.tools import Action
from yiju.payment.payments import plan_problem
from yiju.planning import policy
from yiju.planning.pricing import CatalogIndex, OverLimit, Unresolvable, price_lines


def _lines(catalog: Catalog, *actions: Action, user: str = "u-1002") -> list[ev.PlanLine]:
    return price_lines(list(actions), catalog.users[user], catalog, CatalogIndex.build(catalog))


def _plan(catalog: Catalog, lines: list[ev.PlanLine], subsidy: int = 0, user: str = "u-1002") -> ev.Plan:
    subtotal = sum(ln.line_total_fen for ln in lines)
    return ev.Plan(
        lines=lines,
        subtotal_fen=subtotal,
        subsidy_fen=subsidy,
        total_fen=subtotal - subsidy,
        payer_account=f"wallet:{user}",
    )


def test_lines_are_priced_from_the_catalog(catalog: Catalog) -> None:
    lines = _lines(
        catalog,
        Action("order_item", product_query="Bubble Tea", quantity=2, deliver_to="office"),
        Action("order_item", sku="coffee-latte", quantity=1),
    )
    assert [(ln.sku, ln.quantity, ln.unit_price_fen, ln.line_total_fen) for ln in lines] == [
        ("tea-brown-sugar-boba", 2, 1800, 3600),
        ("coffee-latte", 1, 1600, 1600),
    ]
    assert lines[0].deliver_to == "office"
    assert lines[0].merchant_id == "m-chayan"


def test_places_outside_the_users_address_book_are_dropped(catalog: Catalog) -> None:
    [line] = _lines(catalog, Action("order_item", sku="coffee-latte", deliver_to="office"), user="u-1003")
    assert line.deliver_to == ""


def test_unknown_products_and_wrong_tools_ask_for_clarification(catalog: Catalog) -> None:
    with pytest.raises(Unresolvable):
        _lines(catalog, Action("order_item", product_query="a cat"))
    with pytest.raises(Unresolvable):
        _lines(catalog, Action("book_ride", sku="coffee-latte"))


def test_quantities_and_line_counts_are_capped(catalog: Catalog) -> None:
    with pytest.raises(OverLimit):
        _lines(catalog, Action("order_item", sku="coffee-latte", quantity=100))
    with pytest.raises(OverLimit):
        _lines(catalog, *[Action("order_item", sku="coffee-latte")] * 11)


def _mandate(catalog: Catalog, user: str) -> Mandate:
    return mandate_for(catalog.users[user], REPO / "catalog")


def test_policy_rejects_over_limit_and_asks_confirmation_above_threshold(catalog: Catalog) -> None:
    mandate = _mandate(catalog, "u-1002")  # limit 50000 per order, 150000 per day, confirm above 30000
    assert policy.check(ev.Plan(total_fen=4200), mandate).verdict is policy.Verdict.APPROVE
    assert policy.check(ev.Plan(total_fen=30001), mandate).verdict is policy.Verdict.CONFIRM
    rejected = policy.check(ev.Plan(total_fen=599900), mandate)
    assert rejected.verdict is policy.Verdict.REJECT
    assert "¥5,999.00" in rejected.reason


def test_policy_enforces_the_daily_limit_and_allowed_verticals(catalog: Catalog) -> None:
    mandate = _mandate(catalog, "u-1002")
    assert mandate.per_day_fen == 150000
    over = policy.check(ev.Plan(total_fen=20000), mandate, spent_today_fen=140000)
    assert (over.verdict, over.code) == (policy.Verdict.REJECT, "over_daily_limit")
    restricted = _mandate(catalog, "u-1003")  # mandates.json: food, grocery and rides only
    retail = ev.Plan(lines=[ev.PlanLine(sku="fest-red-envelopes", vertical="retail")], total_fen=990)
    blocked = policy.check(retail, restricted)
    assert (blocked.verdict, blocked.code) == (policy.Verdict.REJECT, "vertical_not_allowed")


def test_payment_accepts_an_honest_plan(catalog: Catalog) -> None:
    plan = _plan(catalog, _lines(catalog, Action("order_item", sku="tea-brown-sugar-boba", quantity=2)), 1000)
    assert plan_problem(plan, "u-1002", catalog, REPO / "catalog") is None


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        (lambda p: setattr(p.lines[0], "unit_price_fen", 1), "does not match the catalog"),
        (lambda p: setattr(p, "payer_account", "wallet:u-1004"), "paying account"),
        (lambda p: setattr(p, "subsidy_fen", 5000), "subsidy"),
        (lambda p: setattr(p, "total_fen", 1), "total"),
        (lambda p: setattr(p.lines[0], "merchant_id", "m-luckin"), "does not match the catalog"),
    ],
)
def test_payment_refuses_a_tampered_plan(catalog: Catalog, tamper, why: str) -> None:
    plan = _plan(catalog, _lines(catalog, Action("order_item", sku="tea-brown-sugar-boba", quantity=2)), 1000)
    tamper(plan)
    problem = plan_problem(plan, "u-1002", catalog, REPO / "catalog")
    assert problem is not None and why in problem
