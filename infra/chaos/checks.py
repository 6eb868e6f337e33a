"""What a chaos run proves, measured at the end: nothing lost, nothing twice, money reconciled."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio.client import Redis

from yiju.common.catalog import Campaign
from yiju.common.dead_letters import read_dead_letters
from yiju.common.orders import TERMINAL
from yiju.common.reconcile import Report, reconcile
from yiju.common.settings import Settings
from yiju.intent.sweeper import CANCEL_REASONS
from yiju.payment.wallet import ledger_key, payment_key
from yiju.planning.subsidy import ledger_key as subsidy_ledger_key
from yiju_infra.chaos.driver import Submission
from yiju_infra.chaos.workload import EXPECTED, SWEPT_BY_DESIGN

SWEEPER_REASONS = frozenset({"confirmation expired", "fulfilment timed out", *CANCEL_REASONS.values()})


@dataclass
class Findings:
    figures: dict[str, Any] = field(default_factory=dict)
    examples: dict[str, list[Any]] = field(default_factory=dict)

    def note(self, name: str, example: Any, limit: int = 10) -> None:
        self.examples.setdefault(name, [])
        if len(self.examples[name]) < limit:
            self.examples[name].append(example)


async def _ledger_duplicates(redis: Redis, users: list[str], findings: Findings) -> tuple[int, int]:
    """Orders captured (or authorized) more than once, from the wallet ledger streams."""
    captures, authorizations = 0, 0
    for user in users:
        entries = await redis.xrange(ledger_key(user))
        counts = Counter((fields.get("type"), fields.get("order")) for _, fields in entries)
        for (kind, order), n in counts.items():
            if n > 1 and kind == "capture":
                captures += 1
                findings.note("duplicate_captures", {"user": user, "order": order, "times": n})
            if n > 1 and kind == "authorize":
                authorizations += 1
                findings.note("duplicate_authorizations", {"user": user, "order": order, "times": n})
    return captures, authorizations


async def _double_subsidies(redis: Redis, campaign: Campaign | None, findings: Findings) -> int:
    """Orders granted the subsidy twice, and users holding more grants than the campaign allows.

    The ledger is trimmed (`subsidy_ledger_maxlen`, 100,000 entries by default, far above a chaos run), so
    this judges the entries kept: a double grant whose first grant was trimmed away is not seen. A user's
    grants are the use count each entry recorded after it (any moment over the limit counts, even one
    trimmed away before the end), or for entries written before counts were recorded, the user's net
    grants in the kept ledger."""
    if campaign is None:
        return 0
    grants: Counter[str] = Counter()
    net: dict[str, str] = {}
    most: dict[str, int] = {}  # user -> the highest use count an entry recorded
    for _, entry in await redis.xrange(subsidy_ledger_key(campaign.id)):
        order, user = entry.get("order", ""), entry.get("user", "")
        if entry.get("type") == "subsidy_granted":
            grants[order] += 1
            net[order] = user
        elif entry.get("type") == "subsidy_released":
            net.pop(order, None)
        if (entry.get("uses") or "").lstrip("-").isdigit():
            most[user] = max(most.get(user, 0), int(entry["uses"]))
    doubles = [o for o, n in grants.items() if n > 1]
    for order in doubles:
        findings.note("double_subsidies", {"order": order, "grants": grants[order]})
    per_user = Counter(net.values())
    held = {user: max(per_user.get(user, 0), most.get(user, 0)) for user in set(per_user) | set(most)}
    over = sorted(u for u, n in held.items() if n > campaign.per_user_max_uses)
    for user in over:
        findings.note("double_subsidies", {"user": user, "grants": held[user]})
    return len(doubles) + len(over)


async def _money_per_order(redis: Redis, subs: list[Submission], findings: Findings) -> int:
    """Each settled order's money agrees with its status: COMPLETED is captured in full, nothing else
    keeps a hold or a capture."""
    accepted = [s for s in subs if s.order_id]
    async with redis.pipeline(transaction=False) as pipe:
        for sub in accepted:
            pipe.hmget(f"order:{{{sub.order_id}}}", ["status", "plan"])
            pipe.hmget(payment_key(sub.sentence.user_id, sub.order_id), ["status", "amount"])
        rows = await pipe.execute()
    bad = 0
    for i, sub in enumerate(accepted):
        (status, plan), (paid, amount) = rows[2 * i], rows[2 * i + 1]
        if status not in TERMINAL:
            continue
        total = orjson.loads(plan).get("total_fen", 0) if plan else 0
        ok = (
            (paid == "CAPTURED" and int(amount or 0) == total)
            if status == "COMPLETED"
            else paid
            not in (
                "AUTHORIZED",
                "CAPTURED",
            )
        )
        if not ok:
            bad += 1
            findings.note("inconsistent_orders", {"order": sub.order_id, "status": status, "payment": paid})
    return bad


async def verify(
    settings: Settings,
    redis: Redis,
    campaign: Campaign | None,
    subs: list[Submission],
    statuses: dict[str, str | None],
) -> tuple[Findings, Report]:
    """Every figure of the chaos report that comes from the platform's final state."""
    findings = Findings()
    f = findings.figures
    accepted = [s for s in subs if s.order_id]
    terminal = [s for s in accepted if statuses.get(s.order_id) in TERMINAL]
    f["submitted"] = len(accepted)
    f["not_accepted"] = len(subs) - len(accepted)
    for sub in subs:
        if not sub.order_id:
            findings.note("not_accepted", {"key": sub.sentence.idempotency_key, "error": sub.error})
    f["reached_terminal"] = len(terminal)
    f["lost"] = len(accepted) - len(terminal)
    for sub in accepted:
        if statuses.get(sub.order_id) not in TERMINAL:
            findings.note("lost", {"order": sub.order_id, "status": statuses.get(sub.order_id)})
    mismatched = [s for s in accepted if s.sentence.resubmit and s.replayed_order_id != s.order_id]
    f["resubmitted"] = sum(1 for s in accepted if s.sentence.resubmit)
    f["idempotency_mismatches"] = len(mismatched)
    report = await reconcile(settings, redis, campaign)
    users = sorted(report.wallets)
    f["duplicate_captures"], f["duplicate_authorizations"] = await _ledger_duplicates(redis, users, findings)
    f["double_subsidies"] = await _double_subsidies(redis, campaign, findings)
    f["budget_overspent_fen"] = int(report.campaign.get("overspent_fen", 0)) if report.campaign else 0
    f["ledger_diff_fen"] = report.diff_fen
    f["ledger_differences"] = len(report.differences)
    for diff in report.differences[:10]:
        findings.note("ledger_differences", str(diff))
    f["held_left_fen"] = sum(int(w.get("held", 0)) for w in report.wallets.values())
    f["inconsistent_orders"] = await _money_per_order(redis, subs, findings)
    judge_outcomes(accepted, statuses, await _reasons(redis, accepted), findings)
    letters = await read_dead_letters(settings)
    f["dead_letters"] = dict(Counter(f"{d.group}:{d.reason}" for d in letters))
    return findings, report


def judge_outcomes(
    accepted: list[Submission],
    statuses: dict[str, str | None],
    reasons: dict[str, str | None],
    findings: Findings,
) -> None:
    """Each order's ending against what its sentence should have ended in, and who settled it.

    `lost` alone can't show a loss the sweeper covered up (it makes every stuck order terminal), so an
    unexpected ending counts, and so does any order the sweeper settled that the workload did not leave
    to it (only confirmations nobody answers are).
    """
    f = findings.figures
    outcomes: Counter[str] = Counter()
    unexpected: Counter[str] = Counter()
    swept: Counter[str] = Counter()
    for sub in accepted:
        kind, status = sub.sentence.kind, statuses.get(sub.order_id) or "MISSING"
        reason = reasons.get(sub.order_id)
        outcomes[f"{kind}:{status}"] += 1
        if status in TERMINAL and status not in EXPECTED[kind]:
            unexpected[f"{kind}:{status}"] += 1
            example = {"order": sub.order_id, "kind": str(kind), "status": status, "reason": reason}
            findings.note("unexpected_outcomes", example)
        if reason in SWEEPER_REASONS:
            swept[str(kind)] += 1
            if kind not in SWEPT_BY_DESIGN:
                findings.note(
                    "unexpected_sweeps", {"order": sub.order_id, "kind": str(kind), "reason": reason}
                )
    f["statuses"] = dict(Counter(statuses.get(s.order_id) or "MISSING" for s in accepted))
    f["outcomes"] = dict(sorted(outcomes.items()))
    f["unexpected_outcomes"] = dict(unexpected)
    f["unexpected_outcome_count"] = sum(unexpected.values())
    f["settled_by_sweeper"] = sum(swept.values())
    f["settled_by_sweeper_by_kind"] = dict(swept)
    f["unexpected_sweeps"] = sum(n for kind, n in swept.items() if kind not in SWEPT_BY_DESIGN)


async def _reasons(redis: Redis, subs: list[Submission]) -> dict[str, str | None]:
    async with redis.pipeline(transaction=False) as pipe:
        for sub in subs:
            pipe.hget(f"order:{{{sub.order_id}}}", "reason")
        return dict(zip([s.order_id for s in subs], await pipe.execute(), strict=True))
