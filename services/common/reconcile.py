"""Reconciliation: every wallet and the campaign budget recomputed twice and compared with Redis.

* From the **Kafka events** (what the services told the world): per order, payment.authorized (from the
  payment service) holds the amount, payment.captured spends it, payment.voided gives it back (after a
  capture: a refund). A subsidy is granted by plan.created / plan.awaiting_confirmation (from planning)
  and given back when the order is cancelled, declined, voided or rejected (order.cancelled,
  payment.declined, payment.voided, plan.rejected; a rejection never keeps a grant). Events are
  de-duplicated per order, so redeliveries and re-drives count once.
* From the **Redis ledger streams** (what the money scripts did): ``ledger:{user}`` (authorize, capture,
  void, refund) and ``subsidy:{campaign}:ledger`` (granted, released), replayed in order.
* **Redis state**: the wallet hashes (balance, held, spent), each payment's status, the budget, each
  order's grant and each user's use count.

Run it when the platform is quiet: while orders are in flight, an event may lag its Redis effect.
Amounts are integer fen.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from google.protobuf.message import Message
from redis.asyncio.client import Redis

from yiju.common import topics as t
from yiju.common.catalog import Campaign
from yiju.common.envelope import MalformedEvent, decode
from yiju.common.settings import Settings
from yiju.gen.events.v1 import order_events_pb2 as ev

EVENT_TOPICS: tuple[str, ...] = (
    t.PAYMENT_AUTHORIZED,
    t.PAYMENT_CAPTURED,
    t.PAYMENT_VOIDED,
    t.PAYMENT_DECLINED,
    t.PLAN_CREATED,
    t.PLAN_AWAITING_CONFIRMATION,
    t.PLAN_REJECTED,
    t.ORDER_CANCELLED,
)
# Whose word counts for what: money moves are the payment service's events; grants are planning's.
PAYMENT_SOURCE = "yiju/payment"
PLANNING_SOURCE = "yiju/planning"
MONEY_STATUSES = frozenset({"AUTHORIZED", "CAPTURED", "VOIDED", "REFUNDED"})


@dataclass
class Wallet:
    balance: int = 0
    held: int = 0
    spent: int = 0


@dataclass
class EventsView:
    """What the events say, per order."""

    authorized: dict[str, tuple[str, int]] = field(default_factory=dict)  # order -> (user, amount)
    captured: set[str] = field(default_factory=set)
    voided: set[str] = field(default_factory=set)
    grants: dict[str, tuple[str, int]] = field(default_factory=dict)  # order -> (user, subsidy)
    released: set[str] = field(default_factory=set)
    read: int = 0
    ignored: int = 0

    def add(self, source: str, message: Message) -> None:
        """Takes one decoded event into account."""
        self.read += 1
        if isinstance(message, ev.PaymentAuthorized | ev.PaymentCaptured | ev.PaymentVoided):
            if source != PAYMENT_SOURCE:
                self.ignored += 1
                return
            if isinstance(message, ev.PaymentAuthorized):
                self.authorized.setdefault(message.order_id, (message.user_id, message.amount_fen))
                return
            (self.captured if isinstance(message, ev.PaymentCaptured) else self.voided).add(message.order_id)
        if isinstance(message, ev.PlanCreated | ev.PlanAwaitingConfirmation):
            if source != PLANNING_SOURCE:
                self.ignored += 1
                return
            if message.plan.subsidy_fen > 0:
                self.grants.setdefault(message.order_id, (message.user_id, message.plan.subsidy_fen))
            return
        if isinstance(message, ev.OrderCancelled | ev.PaymentDeclined | ev.PaymentVoided | ev.PlanRejected):
            self.released.add(message.order_id)

    def payment_status(self, order_id: str) -> str:
        if order_id in self.voided:
            return "REFUNDED" if order_id in self.captured else "VOIDED"
        return "CAPTURED" if order_id in self.captured else "AUTHORIZED"

    def wallets(self, openings: Mapping[str, int]) -> dict[str, Wallet]:
        out = {user: Wallet(balance=opening) for user, opening in openings.items()}
        for order_id, (user, amount) in self.authorized.items():
            wallet = out.setdefault(user, Wallet())
            status = self.payment_status(order_id)
            if status == "AUTHORIZED":
                wallet.held += amount
                wallet.balance -= amount
            elif status == "CAPTURED":
                wallet.spent += amount
                wallet.balance -= amount
        return out

    def net_grants(self) -> dict[str, tuple[str, int]]:
        return {o: g for o, g in self.grants.items() if o not in self.released}


def ledger_wallet(entries: Iterable[Mapping[str, str]], opening: int) -> Wallet:
    """A wallet replayed from its ledger stream entries (type, order, amount)."""
    wallet = Wallet(balance=opening)
    for entry in entries:
        amount = int(entry.get("amount", 0))
        kind = entry.get("type")
        if kind == "authorize":
            wallet.balance -= amount
            wallet.held += amount
        elif kind == "capture":
            wallet.held -= amount
            wallet.spent += amount
        elif kind == "void":
            wallet.held -= amount
            wallet.balance += amount
        elif kind == "refund":
            wallet.spent -= amount
            wallet.balance += amount
    return wallet


@dataclass
class SubsidyLedger:
    granted: dict[str, tuple[str, int]] = field(default_factory=dict)  # order -> (user, amount), net
    grants_per_order: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def ledger_subsidy(entries: Iterable[Mapping[str, str]]) -> SubsidyLedger:
    """The net grants replayed from the subsidy ledger stream (subsidy_granted / subsidy_released)."""
    out = SubsidyLedger()
    for entry in entries:
        order = entry.get("order", "")
        if entry.get("type") == "subsidy_granted":
            out.granted[order] = (entry.get("user", ""), int(entry.get("amount", 0)))
            out.grants_per_order[order] += 1
        elif entry.get("type") == "subsidy_released":
            out.granted.pop(order, None)
    return out


@dataclass
class Difference:
    scope: str  # "wallet:u-1004", "campaign:spring-festival", "payment:ord_...", "grant:ord_..."
    field: str
    redis: Any
    events: Any
    ledger: Any
    diff_fen: int

    def __str__(self) -> str:
        return (
            f"{self.scope} {self.field}: redis={self.redis} events={self.events} ledger={self.ledger}"
            f" (off by {self.diff_fen} fen)"
        )


@dataclass
class Report:
    differences: list[Difference] = field(default_factory=list)
    wallets: dict[str, dict[str, Any]] = field(default_factory=dict)
    campaign: dict[str, Any] = field(default_factory=dict)
    events_read: int = 0
    events_ignored: int = 0
    malformed_records: int = 0
    orders_with_money: int = 0

    @property
    def ok(self) -> bool:
        return not self.differences

    @property
    def diff_fen(self) -> int:
        return sum(d.diff_fen for d in self.differences)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "diff_fen": self.diff_fen,
            "differences": [asdict(d) for d in self.differences],
            "wallets": self.wallets,
            "campaign": self.campaign,
            "events_read": self.events_read,
            "events_ignored": self.events_ignored,
            "malformed_records": self.malformed_records,
            "orders_with_money": self.orders_with_money,
        }


def _money_diff(
    scope: str, name: str, redis: int, events: int | None, ledger: int | None
) -> Difference | None:
    known = [v for v in (events, ledger) if v is not None]
    if all(v == redis for v in known):
        return None
    return Difference(scope, name, redis, events, ledger, max(abs(v - redis) for v in known))


def compare_wallets(
    redis_wallets: Mapping[str, Mapping[str, str]],
    from_events: Mapping[str, Wallet],
    from_ledger: Mapping[str, Wallet],
) -> tuple[list[Difference], dict[str, dict[str, Any]]]:
    diffs: list[Difference] = []
    table: dict[str, dict[str, Any]] = {}
    for user in sorted(set(redis_wallets) | set(from_events)):
        stored = redis_wallets.get(user, {})
        events, ledger = from_events.get(user), from_ledger.get(user)
        row: dict[str, Any] = {"opening": int(stored.get("opening", 0))}
        for name in ("balance", "held", "spent"):
            actual = int(stored.get(name, 0))
            expected = getattr(events, name) if events else None
            replayed = getattr(ledger, name) if ledger else None
            row[name] = actual
            row[f"{name}_events"], row[f"{name}_ledger"] = expected, replayed
            diff = _money_diff(f"wallet:{user}", name, actual, expected, replayed)
            if diff:
                diffs.append(diff)
        table[user] = row
    return diffs, table


def compare_campaign(
    campaign: Campaign,
    budget_left: int,
    grant_values: Mapping[str, str | None],
    uses: Mapping[str, int],
    events: EventsView,
    ledger: SubsidyLedger,
) -> tuple[list[Difference], dict[str, Any]]:
    """Budget left, each order's grant and each user's use count: Redis vs events vs ledger."""
    scope = f"campaign:{campaign.id}"
    net_events, net_ledger = events.net_grants(), ledger.granted
    expected = campaign.budget_fen - sum(a for _, a in net_events.values())
    replayed = campaign.budget_fen - sum(a for _, a in net_ledger.values())
    diffs = [d for d in [_money_diff(scope, "budget_left", budget_left, expected, replayed)] if d]
    for order in sorted(set(net_events) | set(net_ledger) | set(events.grants)):
        raw = grant_values.get(order)
        held = int(raw) if raw and raw.isdigit() else 0
        diff = _money_diff(
            f"grant:{order}",
            "subsidy",
            held,
            net_events.get(order, ("", 0))[1],
            net_ledger.get(order, ("", 0))[1],
        )
        if diff:
            diffs.append(diff)
    counted: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for user, _ in net_events.values():
        counted[user][0] += 1
    for user, _ in net_ledger.values():
        counted[user][1] += 1
    for user in sorted(set(counted) | {u for u, n in uses.items() if n}):
        from_events, from_ledger = counted[user]
        if not uses.get(user, 0) == from_events == from_ledger:
            diffs.append(
                Difference(f"{scope}:uses:{user}", "uses", uses.get(user, 0), from_events, from_ledger, 0)
            )
    summary = {
        "id": campaign.id,
        "budget_fen": campaign.budget_fen,
        "budget_left": budget_left,
        "budget_left_events": expected,
        "budget_left_ledger": replayed,
        "spent_fen": campaign.budget_fen - budget_left,
        "overspent_fen": max(0, -budget_left, -expected),
        "orders_granted": len(net_events),
        "double_grants": sum(1 for n in ledger.grants_per_order.values() if n > 1),
    }
    return diffs, summary


def compare_payments(statuses: Mapping[str, str | None], events: EventsView) -> list[Difference]:
    """Each order the events moved money for: the payment status in Redis agrees with the events."""
    diffs = []
    for order_id, (_, amount) in sorted(events.authorized.items()):
        expected = events.payment_status(order_id)
        actual = statuses.get(order_id)
        if actual != expected:
            diffs.append(Difference(f"payment:{order_id}", "status", actual, expected, None, amount))
    return diffs


# ----- collecting (async: Kafka and Redis)


async def read_events(settings: Settings, *, timeout_s: float = 120.0) -> tuple[EventsView, int]:
    """The money-relevant events from Kafka (see EVENT_TOPICS); returns the view and the malformed count."""
    from yiju.common.dead_letters import read_to_end

    view, malformed = EventsView(), 0
    namespace = t.Namespace.of(settings)
    for record in await read_to_end(settings, EVENT_TOPICS, timeout_s=timeout_s):
        try:
            meta, message = decode(
                namespace.logical(record.topic), record.partition, record.offset, record.value, record.headers
            )
        except MalformedEvent:
            malformed += 1
            continue
        view.add(meta.source, message)
    return view, malformed


async def _scan(redis: Redis, pattern: str) -> list[str]:
    return sorted({key async for key in redis.scan_iter(match=pattern, count=1000)})


async def reconcile(settings: Settings, redis: Redis, campaign: Campaign | None) -> Report:
    """Recomputes every wallet and the campaign budget from the events and the ledgers (see above)."""
    from yiju.payment.wallet import ledger_key, payment_key
    from yiju.planning.subsidy import budget_key
    from yiju.planning.subsidy import ledger_key as subsidy_ledger_key

    events, malformed = await read_events(settings)
    report = Report(events_read=events.read, events_ignored=events.ignored, malformed_records=malformed)
    report.orders_with_money = len(events.authorized)
    wallet_keys = await _scan(redis, "wallet:{*}")
    users = [k[len("wallet:{") : -1] for k in wallet_keys]
    async with redis.pipeline(transaction=False) as pipe:
        for key in wallet_keys:
            pipe.hgetall(key)
        stored = dict(zip(users, await pipe.execute(), strict=True))
    ledgers = {}
    for user in users:
        entries = [fields for _, fields in await redis.xrange(ledger_key(user))]
        ledgers[user] = ledger_wallet(entries, int(stored[user].get("opening", 0)))
    openings = {u: int(w.get("opening", 0)) for u, w in stored.items()}
    diffs, report.wallets = compare_wallets(stored, events.wallets(openings), ledgers)
    report.differences += diffs
    orders = sorted(events.authorized.items())
    async with redis.pipeline(transaction=False) as pipe:
        for order_id, (user, _) in orders:
            pipe.hget(payment_key(user, order_id), "status")
        statuses = dict(zip([o for o, _ in orders], await pipe.execute(), strict=True))
    report.differences += compare_payments(statuses, events)
    if campaign is not None:
        cid = campaign.id
        ledger = ledger_subsidy(f for _, f in await redis.xrange(subsidy_ledger_key(cid)))
        budget_left = int(await redis.get(budget_key(cid)) or 0)
        grant_orders = sorted(set(events.grants) | set(ledger.grants_per_order))
        async with redis.pipeline(transaction=False) as pipe:
            for order in grant_orders:
                pipe.get(f"subsidy:{{{cid}}}:order:{order}")
            grant_values = dict(zip(grant_orders, await pipe.execute(), strict=True))
        use_keys = await _scan(redis, f"subsidy:{{{cid}}}:uses:*")
        uses = {}
        if use_keys:
            values = await redis.mget(use_keys)
            uses = {k.rsplit(":", 1)[1]: int(v or 0) for k, v in zip(use_keys, values, strict=True)}
        diffs, report.campaign = compare_campaign(campaign, budget_left, grant_values, uses, events, ledger)
        report.differences += diffs
    return report
