"""Reconciliation: every wallet and the campaign budget recomputed twice and compared with Redis.

* From the **Kafka events** (what the services told the world): per order, payment.authorized (from the
  payment service) holds the amount, payment.captured spends it, payment.voided gives the hold back and
  payment.refunded gives a capture back. A subsidy is granted by plan.created /
  plan.awaiting_confirmation (from planning) and given back when the order is cancelled, declined,
  voided, refunded or rejected (order.cancelled,
  payment.declined, payment.voided, payment.refunded, plan.rejected; a rejection never keeps a grant).
  Events are de-duplicated per order, so redeliveries and re-drives count once. A wallet is recomputed
  from the events only while they hold its whole history (its ledger is untrimmed and every order the
  ledger authorized is in the events); otherwise the events still check each order's payment status.
* From the **Redis ledger streams** (what the money scripts did): ``ledger:{user}`` (authorize, capture,
  void, refund; trimmed to about ``wallet_ledger_maxlen`` entries, replayed from the first kept entry's
  recorded totals: ``yiju.common.ledger_replay``) and ``subsidy:{campaign}:ledger`` (granted, released;
  trimmed to about ``subsidy_ledger_maxlen`` entries, replayed the same way: the budget left from the
  first kept entry's, each user's use count from the user's first kept entry's). A gap in a ledger's
  sequence or an entry whose totals disagree with the replay is a ``chain`` difference. The campaign's
  budget and use counts are recomputed from the events only while they hold its whole history (its
  ledger is untrimmed and every order in it is in the events); each order's grant is compared either way.
* **Redis state**: the wallet hashes (balance, held, spent), each payment's status (a settled record that
  expired by its TTL is counted, not compared), the per-day spend counters (``daily:{user}:{day}``: the
  sum of that day's payments still holding or spending money), the budget, each order's grant and each
  user's use count.

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
from yiju.common.ledger_replay import (
    LedgerReplay,
    SubsidyReplay,
    Wallet,
    replay_ledger,
    replay_subsidy_ledger,
)
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
    t.PAYMENT_REFUNDED,
)
# Whose word counts for what: money moves are the payment service's events; grants are planning's.
PAYMENT_SOURCE = "yiju/payment"
PLANNING_SOURCE = "yiju/planning"
MONEY_STATUSES = frozenset({"AUTHORIZED", "CAPTURED", "VOIDED", "REFUNDED"})


@dataclass
class EventsView:
    """What the events say, per order."""

    authorized: dict[str, tuple[str, int]] = field(default_factory=dict)  # order -> (user, amount)
    captured: set[str] = field(default_factory=set)
    voided: set[str] = field(default_factory=set)
    refunded: set[str] = field(default_factory=set)
    grants: dict[str, tuple[str, int]] = field(default_factory=dict)  # order -> (user, subsidy)
    released: set[str] = field(default_factory=set)
    read: int = 0
    ignored: int = 0

    def add(self, source: str, message: Message) -> None:
        """Takes one decoded event into account."""
        self.read += 1
        if isinstance(
            message, ev.PaymentAuthorized | ev.PaymentCaptured | ev.PaymentVoided | ev.PaymentRefunded
        ):
            if source != PAYMENT_SOURCE:
                self.ignored += 1
                return
            if isinstance(message, ev.PaymentAuthorized):
                self.authorized.setdefault(message.order_id, (message.user_id, message.amount_fen))
                return
            if isinstance(message, ev.PaymentRefunded):
                self.refunded.add(message.order_id)
            else:
                (self.captured if isinstance(message, ev.PaymentCaptured) else self.voided).add(
                    message.order_id
                )
        if isinstance(message, ev.PlanCreated | ev.PlanAwaitingConfirmation):
            if source != PLANNING_SOURCE:
                self.ignored += 1
                return
            if message.plan.subsidy_fen > 0:
                self.grants.setdefault(message.order_id, (message.user_id, message.plan.subsidy_fen))
            return
        if isinstance(
            message,
            ev.OrderCancelled | ev.PaymentDeclined | ev.PaymentVoided | ev.PaymentRefunded | ev.PlanRejected,
        ):
            self.released.add(message.order_id)

    def payment_status(self, order_id: str) -> str:
        if order_id in self.refunded:
            return "REFUNDED"
        if (
            order_id in self.voided
        ):  # after a capture: a refund as payment recorded it before refunds had events
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
    """A wallet replayed from its ledger stream entries (see `replay_ledger` for a trimmed ledger)."""
    return replay_ledger(entries, opening).wallet


def complete_event_wallets(
    events: EventsView, openings: Mapping[str, int], replays: Mapping[str, LedgerReplay]
) -> dict[str, Wallet]:
    """The wallets the events can recompute: those whose whole history they hold (the ledger is
    untrimmed and every order it authorized is in the events; Kafka's retention drops old events)."""
    recomputed = events.wallets(openings)
    return {
        user: wallet
        for user, wallet in recomputed.items()
        if user not in replays
        or (
            not replays[user].trimmed
            and all(order in events.authorized for order in replays[user].authorized_orders)
        )
    }


LIVE_PAYMENTS = frozenset({"AUTHORIZED", "CAPTURED"})  # statuses whose amount counts against its day


def compare_daily(
    counters: Mapping[str, int], payments: Iterable[tuple[str | None, str | None, str | None]]
) -> list[Difference]:
    """Each per-day spend counter still kept (``daily:{user}:{day}``, 3 days) against the payments
    counted in it, given as (status, amount, day key): those still holding or spending money."""
    expected: dict[str, int] = defaultdict(int)
    for status, amount, day_key in payments:
        if day_key and status in LIVE_PAYMENTS:
            expected[day_key] += int(amount or 0)
    diffs = []
    for key, spent in sorted(counters.items()):
        if spent != expected.get(key, 0):
            diffs.append(
                Difference(key, "spent", spent, expected.get(key, 0), None, abs(spent - expected.get(key, 0)))
            )
    return diffs


SubsidyLedger = SubsidyReplay


def ledger_subsidy(entries: Iterable[Mapping[str, str]], budget_fen: int = 0) -> SubsidyReplay:
    """The net grants, budget left and use counts replayed from the subsidy ledger stream (subsidy_granted
    / subsidy_released), trimmed or not: see `replay_subsidy_ledger`."""
    return replay_subsidy_ledger(entries, budget_fen)


def events_hold_the_campaign(events: EventsView, ledger: SubsidyReplay) -> bool:
    """Whether the events hold the campaign's whole history, so they can recompute its budget and use
    counts: its ledger is untrimmed and every order in it is one the events know (Kafka's retention
    drops old events; a trimmed ledger can't show what the events may have lost)."""
    return not ledger.trimmed and all(o in events.grants or o in events.released for o in ledger.orders)


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
    refunds: int = 0
    ledgers_trimmed: int = 0  # wallets whose ledger was replayed from a checkpoint
    wallets_from_events: int = 0  # wallets the events could recompute in full
    payments_expired: int = 0  # settled payment records gone by their TTL (not compared)
    daily_counters: int = 0

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
            "refunds": self.refunds,
            "ledgers_trimmed": self.ledgers_trimmed,
            "wallets_from_events": self.wallets_from_events,
            "payments_expired": self.payments_expired,
            "daily_counters": self.daily_counters,
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
    ledger: SubsidyReplay,
    expired: set[str] | None = None,
) -> tuple[list[Difference], dict[str, Any]]:
    """Budget left, each order's grant and each user's use count: Redis vs events vs ledger.

    The ledger's budget is replayed from the campaign's budget, or from a trimmed ledger's checkpoint;
    its use counts are those recorded (trimmed: for the users with an entry kept). The events recompute
    the budget and the use counts only while they hold the campaign's whole history
    (`events_hold_the_campaign`); each order's grant is compared with the events that know the order and
    with the ledger that holds it (or with 0 where the ledger is untrimmed). Grants in `expired` (their
    key is gone by its TTL, `subsidy_grant_ttl_s`) are not compared one by one."""
    scope = f"campaign:{campaign.id}"
    net_events, net_ledger = events.net_grants(), ledger.granted
    complete = events_hold_the_campaign(events, ledger)
    expected = campaign.budget_fen - sum(a for _, a in net_events.values()) if complete else None
    replayed = (
        ledger.budget_left if ledger.trimmed else campaign.budget_fen + ledger.budget_left - ledger.opening
    )
    diffs = [d for d in [_money_diff(scope, "budget_left", budget_left, expected, replayed)] if d]
    known_to_events = set(events.grants) | events.released
    for order in sorted((set(net_events) | ledger.orders | set(events.grants)) - (expired or set())):
        raw = grant_values.get(order)
        held = int(raw) if raw and raw.isdigit() else 0
        from_events = net_events.get(order, ("", 0))[1] if order in known_to_events or complete else None
        from_ledger = (
            net_ledger.get(order, ("", 0))[1] if order in ledger.orders or not ledger.trimmed else None
        )
        diff = _money_diff(f"grant:{order}", "subsidy", held, from_events, from_ledger)
        if diff:
            diffs.append(diff)
    counted: dict[str, int] = defaultdict(int)
    for user, _ in net_events.values():
        counted[user] += 1
    users = set(ledger.uses) | {u for u, n in uses.items() if n} | (set(counted) if complete else set())
    for user in sorted(users):
        stored = uses.get(user, 0)
        from_events = counted[user] if complete else None
        from_ledger = ledger.uses.get(user) if ledger.trimmed else ledger.uses.get(user, 0)
        if any(v is not None and v != stored for v in (from_events, from_ledger)):
            diffs.append(Difference(f"{scope}:uses:{user}", "uses", stored, from_events, from_ledger, 0))
    summary = {
        "id": campaign.id,
        "budget_fen": campaign.budget_fen,
        "budget_left": budget_left,
        "budget_left_events": expected,
        "budget_left_ledger": replayed,
        "spent_fen": campaign.budget_fen - budget_left,
        "overspent_fen": max(0, -budget_left, -(expected if expected is not None else 0)),
        "orders_granted": len(net_events),
        "double_grants": sum(1 for n in ledger.grants_per_order.values() if n > 1),
        "ledger_entries": ledger.entries,
        "ledger_trimmed": ledger.trimmed,
        "events_complete": complete,
    }
    return diffs, summary


SETTLED_PAYMENTS = frozenset({"CAPTURED", "VOIDED", "REFUNDED"})  # records that expire (payment_record_ttl_s)


def compare_payments(statuses: Mapping[str, str | None], events: EventsView) -> list[Difference]:
    """Each order the events moved money for: the payment status in Redis agrees with the events. A
    settled payment whose record is gone expired by its TTL: `expired_payments` counts those."""
    diffs = []
    for order_id, (_, amount) in sorted(events.authorized.items()):
        expected = events.payment_status(order_id)
        actual = statuses.get(order_id)
        if actual is None and expected in SETTLED_PAYMENTS:
            continue
        if actual != expected:
            diffs.append(Difference(f"payment:{order_id}", "status", actual, expected, None, amount))
    return diffs


def expired_payments(statuses: Mapping[str, str | None], events: EventsView) -> int:
    return sum(
        1
        for order_id in events.authorized
        if statuses.get(order_id) is None and events.payment_status(order_id) in SETTLED_PAYMENTS
    )


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
    from yiju.planning.subsidy import budget_key, expired_grants
    from yiju.planning.subsidy import ledger_key as subsidy_ledger_key
    from yiju.planning.subsidy import ledger_seq_key as subsidy_ledger_seq_key

    events, malformed = await read_events(settings)
    report = Report(events_read=events.read, events_ignored=events.ignored, malformed_records=malformed)
    report.orders_with_money = len(events.authorized)
    wallet_keys = await _scan(redis, "wallet:{*}")
    users = [k[len("wallet:{") : -1] for k in wallet_keys]
    async with redis.pipeline(transaction=False) as pipe:
        for key in wallet_keys:
            pipe.hgetall(key)
        stored = dict(zip(users, await pipe.execute(), strict=True))
    replays: dict[str, LedgerReplay] = {}
    for user in users:
        entries = [fields for _, fields in await redis.xrange(ledger_key(user))]
        replays[user] = replay_ledger(entries, int(stored[user].get("opening", 0)))
        report.differences += [
            Difference(f"ledger:{user}", "chain", None, None, gap, 0) for gap in replays[user].breaks
        ]
    report.ledgers_trimmed = sum(1 for r in replays.values() if r.trimmed)
    report.refunds = len(events.refunded)
    openings = {u: int(w.get("opening", 0)) for u, w in stored.items()}
    from_events = complete_event_wallets(events, openings, replays)
    report.wallets_from_events = len(from_events)
    ledgers = {user: r.wallet for user, r in replays.items()}
    diffs, report.wallets = compare_wallets(stored, from_events, ledgers)
    report.differences += diffs
    # Every payment the events or the kept ledgers know of: its status, amount and day counter.
    payers = {order: user for order, (user, _) in events.authorized.items()}
    for user, replay in replays.items():
        payers.update({order: user for order in replay.authorized_orders})
    orders = sorted(payers.items())
    async with redis.pipeline(transaction=False) as pipe:
        for order_id, user in orders:
            pipe.hmget(payment_key(user, order_id), ["status", "amount", "day_key"])
        records = dict(zip([o for o, _ in orders], await pipe.execute(), strict=True))
    statuses = {order: record[0] for order, record in records.items()}
    report.differences += compare_payments(statuses, events)
    report.payments_expired = expired_payments(statuses, events)
    daily_keys = await _scan(redis, "daily:{*}:*")
    async with redis.pipeline(transaction=False) as pipe:
        for key in daily_keys:
            pipe.hget(key, "spent")
        counters = {k: int(v or 0) for k, v in zip(daily_keys, await pipe.execute(), strict=True)}
    report.daily_counters = len(counters)
    report.differences += compare_daily(counters, [tuple(r) for r in records.values()])
    if campaign is not None:
        cid = campaign.id
        subsidy_entries = await redis.xrange(subsidy_ledger_key(cid))
        ledger = ledger_subsidy((f for _, f in subsidy_entries), campaign.budget_fen)
        gaps = list(ledger.breaks)
        written = int(await redis.get(subsidy_ledger_seq_key(cid)) or 0)  # entries the scripts numbered
        last = int(subsidy_entries[-1][1].get("seq", 0) or 0) if subsidy_entries else 0
        if written > last:
            gaps.append(f"entries {last + 1}..{written} missing at the end")
        report.differences += [
            Difference(f"subsidy:{cid}:ledger", "chain", None, None, gap, 0) for gap in gaps
        ]
        budget_left = int(await redis.get(budget_key(cid)) or 0)
        grant_orders = sorted(set(events.grants) | ledger.orders)
        async with redis.pipeline(transaction=False) as pipe:
            for order in grant_orders:
                pipe.get(f"subsidy:{{{cid}}}:order:{order}")
            grant_values = dict(zip(grant_orders, await pipe.execute(), strict=True))
        use_keys = await _scan(redis, f"subsidy:{{{cid}}}:uses:*")
        uses = {}
        if use_keys:
            values = await redis.mget(use_keys)
            uses = {k.rsplit(":", 1)[1]: int(v or 0) for k, v in zip(use_keys, values, strict=True)}
        seconds, micros = await redis.time()
        expired = expired_grants(
            subsidy_entries, grant_values, seconds * 1000 + micros // 1000, settings.subsidy_grant_ttl_s
        )
        diffs, report.campaign = compare_campaign(
            campaign, budget_left, grant_values, uses, events, ledger, expired
        )
        report.differences += diffs
    return report
