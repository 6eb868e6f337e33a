"""The campaign subsidy ledger is bounded: each entry carries a sequence number and the budget left and
the user's use count after it, so `yiju reconcile` replays a trimmed ledger exactly from what is kept."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from yiju.common.catalog import Campaign
from yiju.common.ledger_replay import replay_subsidy_ledger
from yiju.common.reconcile import PLANNING_SOURCE, EventsView, compare_campaign, ledger_subsidy
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju_infra.chaos.checks import Findings, _double_subsidies

CAMPAIGN = Campaign(
    id="spring", name="Spring", min_order_fen=3000, discount_fen=1000, budget_fen=10_000, per_user_max_uses=3
)
# (type, order, user): what the scripts did, in order
MOVES = [
    ("subsidy_granted", "o1", "a"),
    ("subsidy_granted", "o2", "b"),
    ("subsidy_released", "o1", "a"),
    ("subsidy_granted", "o3", "a"),
    ("subsidy_granted", "o4", "b"),
    ("subsidy_released", "o2", "b"),
    ("subsidy_granted", "o5", "a"),
]
# After MOVES: o3, o4, o5 held; a holds o3 and o5, b holds o4
BUDGET_LEFT, USES = 7000, {"a": 2, "b": 1}
GRANTS = {"o1": "released", "o2": "released", "o3": "1000", "o4": "1000", "o5": "1000"}


def ledger_of(budget: int, moves: list[tuple[str, str, str]], amount: int = 1000) -> list[dict[str, str]]:
    """The entries subsidy_reserve.lua / subsidy_release.lua write for `moves`."""
    uses: dict[str, int] = {}
    out = []
    for seq, (kind, order, user) in enumerate(moves, start=1):
        step = 1 if kind == "subsidy_granted" else -1
        budget -= step * amount
        uses[user] = uses.get(user, 0) + step
        out.append(
            {
                "type": kind,
                "order": order,
                "user": user,
                "amount": str(amount),
                "seq": str(seq),
                "budget": str(budget),
                "uses": str(uses[user]),
            }
        )
    return out


def granted_events(*orders_users: tuple[str, str]) -> EventsView:
    events = EventsView()
    for order, user in orders_users:
        plan = ev.Plan(subtotal_fen=5000, subsidy_fen=1000, total_fen=4000)
        events.add(PLANNING_SOURCE, ev.PlanCreated(order_id=order, user_id=user, plan=plan))
    return events


def test_a_trimmed_subsidy_ledger_replays_from_its_first_kept_entry_to_the_same_budget() -> None:
    full = ledger_of(10_000, MOVES)
    whole = replay_subsidy_ledger(full, 10_000)
    trimmed = replay_subsidy_ledger(full[3:], 10_000)  # the three oldest entries trimmed away
    assert whole.budget_left == trimmed.budget_left == BUDGET_LEFT
    assert not whole.trimmed and trimmed.trimmed and trimmed.opening == 9000
    assert whole.breaks == trimmed.breaks == []
    assert whole.uses == USES
    assert trimmed.uses == USES  # a from o3's recorded count, b from o4's
    assert set(trimmed.granted) == {"o3", "o4", "o5"} and trimmed.orders == {"o2", "o3", "o4", "o5"}
    only_a = replay_subsidy_ledger(full[6:], 10_000)  # b has no entry kept: the ledger can't say
    assert only_a.uses == {"a": 2} and only_a.budget_left == BUDGET_LEFT


def test_a_hole_or_an_entry_that_disagrees_is_a_break() -> None:
    full = ledger_of(10_000, MOVES)
    holed = [*full[:3], *full[4:]]
    assert any("entries 4..4 missing" in b for b in replay_subsidy_ledger(holed, 10_000).breaks)
    budget_off = [*full[:4], {**full[4], "budget": "9999"}, *full[5:]]
    assert len(replay_subsidy_ledger(budget_off, 10_000).breaks) == 1
    uses_off = [*full[:4], {**full[4], "uses": "3"}, *full[5:]]  # b's count after o4 recorded wrong
    assert any(
        "recorded uses=3 for b, replayed uses=2" in b for b in replay_subsidy_ledger(uses_off, 10_000).breaks
    )
    # trimmed, b starts from its first kept entry (the wrong one): b's next entry disagrees with it
    assert any("recorded uses=1 for b" in b for b in replay_subsidy_ledger(uses_off[2:], 10_000).breaks)
    # untrimmed, the first entry's totals are checked against the campaign's budget
    assert replay_subsidy_ledger(full, 20_000).breaks


def test_reconcile_is_exact_over_a_trimmed_subsidy_ledger() -> None:
    full = ledger_of(10_000, MOVES)
    ledger = ledger_subsidy(full[3:], CAMPAIGN.budget_fen)
    events = granted_events(("o3", "a"), ("o4", "b"), ("o5", "a"))  # o1 and o2's events are gone
    diffs, summary = compare_campaign(CAMPAIGN, BUDGET_LEFT, GRANTS, USES, events, ledger)
    assert diffs == []
    assert summary["budget_left_ledger"] == BUDGET_LEFT and summary["ledger_trimmed"]
    assert summary["budget_left_events"] is None  # a trimmed ledger can't show the events are whole
    diffs, _ = compare_campaign(CAMPAIGN, BUDGET_LEFT - 1000, GRANTS, USES, events, ledger)
    assert [(d.field, d.ledger, d.diff_fen) for d in diffs] == [("budget_left", BUDGET_LEFT, 1000)]
    diffs, _ = compare_campaign(CAMPAIGN, BUDGET_LEFT, GRANTS, {"a": 3, "b": 1}, events, ledger)
    assert [(d.scope, d.redis, d.ledger) for d in diffs] == [("campaign:spring:uses:a", 3, 2)]
    diffs, _ = compare_campaign(CAMPAIGN, BUDGET_LEFT, {**GRANTS, "o4": "released"}, USES, events, ledger)
    assert [(d.scope, d.diff_fen) for d in diffs] == [("grant:o4", 1000)]


def test_a_gap_in_a_trimmed_ledger_is_not_taken_for_trimming() -> None:
    full = ledger_of(10_000, MOVES)
    replay = replay_subsidy_ledger([*full[3:5], *full[6:]], 10_000)  # seq 6 gone from the middle
    assert replay.trimmed and any("missing" in b for b in replay.breaks)


def test_the_events_recompute_the_budget_only_while_they_hold_the_whole_campaign() -> None:
    full = ledger_of(10_000, MOVES)
    ledger = ledger_subsidy(full, CAMPAIGN.budget_fen)
    events = granted_events(("o3", "a"), ("o4", "b"), ("o5", "a"))  # o1 and o2's events are gone
    diffs, summary = compare_campaign(CAMPAIGN, BUDGET_LEFT, GRANTS, USES, events, ledger)
    assert diffs == [] and summary["events_complete"] is False and summary["budget_left_events"] is None
    for order, user in (("o1", "a"), ("o2", "b")):
        events.add(
            PLANNING_SOURCE, ev.PlanCreated(order_id=order, user_id=user, plan=ev.Plan(subsidy_fen=1000))
        )
        events.add(PLANNING_SOURCE, ev.PlanRejected(order_id=order, user_id=user, code="test"))
    diffs, summary = compare_campaign(CAMPAIGN, BUDGET_LEFT, GRANTS, USES, events, ledger)
    assert diffs == [] and summary["events_complete"] and summary["budget_left_events"] == BUDGET_LEFT


class FakeRedis:
    def __init__(self, entries: list[Mapping[str, str]]) -> None:
        self.entries = entries

    async def xrange(self, key: str) -> list[tuple[str, Mapping[str, str]]]:
        return [(f"{i + 1}-0", e) for i, e in enumerate(self.entries)]


async def test_the_chaos_check_judges_the_kept_entries_and_the_recorded_use_counts() -> None:
    full = ledger_of(10_000, MOVES)
    findings = Findings()
    redis: Any = FakeRedis(full[3:])
    assert await _double_subsidies(redis, CAMPAIGN, findings) == 0
    # a moment over the limit that the end state no longer shows (four grants, then a release)
    over = ledger_of(
        10_000, [*((("subsidy_granted", f"x{i}", "c")) for i in range(4)), ("subsidy_released", "x0", "c")]
    )
    redis = FakeRedis(over[2:])  # trimmed: only two of c's grants kept, but the fourth recorded uses=4
    assert await _double_subsidies(redis, CAMPAIGN, findings) == 1
    assert findings.examples["double_subsidies"] == [{"user": "c", "grants": 4}]
