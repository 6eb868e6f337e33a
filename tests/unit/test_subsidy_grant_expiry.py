"""Subsidy grants expire (bounded state), and `yiju reconcile` stays exact over the grants that are kept."""

from __future__ import annotations

from yiju.common.catalog import Campaign
from yiju.common.reconcile import PLANNING_SOURCE, EventsView, compare_campaign, ledger_subsidy
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.planning.subsidy import expired_grants

CAMPAIGN = Campaign(
    id="spring", name="Spring", min_order_fen=3000, discount_fen=1000, budget_fen=10_000, per_user_max_uses=3
)
DAY_MS = 24 * 3600 * 1000
TTL_S = 30 * 24 * 3600
NOW_MS = 100 * DAY_MS


def _granted(order: str, at_ms: int) -> tuple[str, dict[str, str]]:
    return f"{at_ms}-0", {"type": "subsidy_granted", "order": order, "user": "a", "amount": "1000"}


def test_only_a_grant_key_gone_after_its_ttl_counts_as_expired() -> None:
    ledger = [
        _granted("old", NOW_MS - 31 * DAY_MS),
        _granted("young", NOW_MS - DAY_MS),
        _granted("kept", NOW_MS - 31 * DAY_MS),
    ]
    values = {"old": None, "young": None, "kept": "1000", "never-in-ledger": None}
    assert expired_grants(ledger, values, NOW_MS, TTL_S) == {"old"}
    released = [*ledger, (f"{NOW_MS - DAY_MS}-0", {"type": "subsidy_released", "order": "old"})]
    assert expired_grants(released, values, NOW_MS, TTL_S) == set()  # rewritten a day ago: not expired


def test_reconcile_skips_the_per_order_check_of_expired_grants_only() -> None:
    entries = [_granted("o1", NOW_MS - 31 * DAY_MS), _granted("o2", NOW_MS - DAY_MS)]
    events = EventsView()
    for order in ("o1", "o2"):
        plan = ev.Plan(subtotal_fen=5000, subsidy_fen=1000, total_fen=4000)
        events.add(PLANNING_SOURCE, ev.PlanCreated(order_id=order, user_id="a", plan=plan))
    ledger = ledger_subsidy(fields for _, fields in entries)
    values = {"o1": None, "o2": "1000"}  # o1's key expired
    expired = expired_grants(entries, values, NOW_MS, TTL_S)
    diffs, _ = compare_campaign(CAMPAIGN, 8000, values, {"a": 2}, events, ledger, expired)
    assert diffs == []
    diffs, _ = compare_campaign(CAMPAIGN, 8000, values, {"a": 2}, events, ledger)  # as if it had not
    assert [(d.scope, d.diff_fen) for d in diffs] == [("grant:o1", 1000)]
    gone_early = {"o1": None, "o2": None}  # o2's key missing before its TTL: still a difference
    expired = expired_grants(entries, gone_early, NOW_MS, TTL_S)
    diffs, _ = compare_campaign(CAMPAIGN, 8000, gone_early, {"a": 2}, events, ledger, expired)
    assert [(d.scope, d.diff_fen) for d in diffs] == [("grant:o2", 1000)]
    diffs, _ = compare_campaign(CAMPAIGN, 9000, values, {"a": 2}, events, ledger, {"o1"})
    assert [(d.field, d.diff_fen) for d in diffs] == [("budget_left", 1000)]  # the budget stays exact
