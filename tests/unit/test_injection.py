"""Prompt injection: the sentence is data. No sentence changes a price, a total, the payer or the merchant.

Each corpus sentence goes through the real gateway backend and the real planning code; whatever it
becomes (a plan, a clarification or a rejection), every priced line must be the catalog's.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.conftest import REPO
from yiju.common.catalog import Catalog
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.model_gateway.backends.rules import RulesBackend
from yiju.model_gateway.tools import MAX_QUANTITY, ParseRequest
from yiju.payment.payments import plan_problem
from yiju.planning.pricing import CatalogIndex, OverLimit, Unresolvable, price_lines

CORPUS = [
    json.loads(line) for line in (REPO / "tests" / "data" / "injection_corpus.jsonl").read_text().splitlines()
]
ATTACKER = "u-1002"


def _plan_for(text: str, catalog: Catalog) -> tuple[str, ev.Plan | None]:
    user = catalog.users[ATTACKER]
    parsed = RulesBackend(catalog).parse_one(
        ParseRequest(text=text, locale=user.locale, user_id=user.id, address_labels=tuple(user.addresses))
    )
    if parsed.needs_clarification:
        return "clarification", None
    try:
        lines = price_lines(parsed.actions, user, catalog, CatalogIndex.build(catalog))
    except (Unresolvable, OverLimit) as exc:
        return type(exc).__name__, None
    subtotal = sum(line.line_total_fen for line in lines)
    return "plan", ev.Plan(
        lines=lines, subtotal_fen=subtotal, total_fen=subtotal, payer_account=f"wallet:{user.id}"
    )


def test_the_corpus_covers_every_attack_kind() -> None:
    kinds = Counter(row["kind"] for row in CORPUS)
    assert len(CORPUS) >= 40
    assert set(kinds) >= {
        "fake_system",
        "price_override",
        "payer_swap",
        "merchant_swap",
        "enormous_quantity",
        "unicode",
        "json_smuggling",
    }


@pytest.mark.parametrize("row", CORPUS, ids=[f"{r['kind']}-{i}" for i, r in enumerate(CORPUS)])
def test_no_sentence_changes_money_or_who_pays(row: dict, catalog: Catalog) -> None:
    outcome, plan = _plan_for(row["text"], catalog)
    if plan is None:
        assert outcome in ("clarification", "Unresolvable", "OverLimit")
        return
    for line in plan.lines:
        product = catalog.products[line.sku]
        assert line.unit_price_fen == product.price_fen
        assert line.merchant_id == product.merchant_id
        assert 1 <= line.quantity <= MAX_QUANTITY
        assert line.line_total_fen == product.price_fen * line.quantity
    assert plan.payer_account == f"wallet:{ATTACKER}"
    problem = plan_problem(plan, ATTACKER, catalog, REPO / "catalog")
    assert problem is None or "limit" in problem or "mandate" in problem, problem


def test_enormous_quantities_never_become_orders(catalog: Catalog) -> None:
    for row in CORPUS:
        if row["kind"] == "enormous_quantity":
            _, plan = _plan_for(row["text"], catalog)
            assert plan is None, (row["text"], plan)
