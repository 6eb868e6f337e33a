"""Replaying a ledger stream, trimmed or not: the wallet ledgers and the campaign subsidy ledger.

A money script appends one entry per movement with its type, the order, the amount, a sequence number
(per stream, from 1) and the totals after the movement. The stream is trimmed (XADD ``MAXLEN ~``), so
the oldest movements go; the first kept entry's totals minus its own movement are then the checkpoint
the replay starts from (untrimmed: the opening). Each kept entry's totals must equal the replay so far,
and the sequence numbers must follow each other: a gap or a disagreement is a break, named with the
entry. Entries written before the totals were recorded (no ``seq``) replay from the opening.

* ``ledger:{user}`` (`replay_ledger`): authorize, capture, void, refund; totals balance, held and spent;
  trimmed to about ``wallet_ledger_maxlen`` entries.
* ``subsidy:{campaign}:ledger`` (`replay_subsidy_ledger`): subsidy_granted, subsidy_released; totals the
  budget left and, per user, the user's use count after the entry (``uses``: a total per user, checked
  along each user's own entries); trimmed to about ``subsidy_ledger_maxlen`` entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# ----- the chain: any ledger whose entries carry a sequence number and the totals after them


@dataclass(frozen=True)
class LedgerShape:
    """What a ledger's entries hold: the totals' field names, and per entry type the change of each
    total per fen moved (a type not listed moves nothing)."""

    fields: tuple[str, ...]
    moves: Mapping[str, tuple[int, ...]]

    def moved(self, totals: tuple[int, ...], kind: str | None, amount: int, sign: int = 1) -> tuple[int, ...]:
        change = self.moves.get(kind or "", (0,) * len(self.fields))
        return tuple(t + sign * c * amount for t, c in zip(totals, change, strict=True))

    def recorded(self, entry: Mapping[str, str]) -> tuple[int, ...] | None:
        try:
            return tuple(int(entry[name]) for name in self.fields)
        except (KeyError, ValueError):
            return None

    def describe(self, totals: tuple[int, ...]) -> str:
        return ", ".join(f"{name}={value}" for name, value in zip(self.fields, totals, strict=True))


@dataclass
class Chain:
    """The totals the kept entries prove."""

    opening: tuple[
        int, ...
    ]  # where the replay started: the given opening, or the trimmed ledger's checkpoint
    totals: tuple[int, ...]
    trimmed: bool = False  # the oldest movements are gone: replayed from the first kept entry's checkpoint
    breaks: list[str] = field(default_factory=list)
    entries: int = 0
    first_seq: int = 0  # the first kept entry's sequence number (0: none recorded)


def _amount(entry: Mapping[str, str]) -> int:
    try:
        return int(entry.get("amount", 0) or 0)
    except ValueError:
        return 0


def _seq(entry: Mapping[str, str]) -> int:
    try:
        return int(entry.get("seq", 0) or 0)
    except ValueError:
        return 0


def replay_chain(entries: Iterable[Mapping[str, str]], opening: Sequence[int], shape: LedgerShape) -> Chain:
    """The totals the kept entries prove, from `opening` or from the trimmed ledger's checkpoint (see the
    module docstring)."""
    kept = list(entries)
    first_totals = shape.recorded(kept[0]) if kept else None
    first_seq = _seq(kept[0]) if kept else 0
    if first_totals is not None and first_seq > 1:
        start = shape.moved(first_totals, kept[0].get("type"), _amount(kept[0]), sign=-1)
        out = Chain(start, start, trimmed=True, first_seq=first_seq)
    else:
        out = Chain(tuple(opening), tuple(opening), first_seq=first_seq)
    previous_seq = 0
    for entry in kept:
        out.entries += 1
        kind, order = entry.get("type"), entry.get("order", "")
        out.totals = shape.moved(out.totals, kind, _amount(entry))
        seq = _seq(entry)
        if seq and previous_seq and seq != previous_seq + 1:
            out.breaks.append(f"entries {previous_seq + 1}..{seq - 1} missing before {kind} of {order}")
        previous_seq = seq or previous_seq
        recorded = shape.recorded(entry)
        if recorded is not None and recorded != out.totals:
            out.breaks.append(
                f"{kind} of {order} (seq {seq}) recorded {shape.describe(recorded)},"
                f" replayed {shape.describe(out.totals)}"
            )
    return out


# ----- wallets: ledger:{user}

WALLET = LedgerShape(
    ("balance", "held", "spent"),
    {"authorize": (-1, 1, 0), "capture": (0, -1, 1), "void": (1, -1, 0), "refund": (1, 0, -1)},
)
# type -> change of (balance, held, spent) per fen moved
MOVES: Mapping[str, tuple[int, ...]] = WALLET.moves


@dataclass
class Wallet:
    balance: int = 0
    held: int = 0
    spent: int = 0

    def moved(self, kind: str | None, amount: int, sign: int = 1) -> Wallet:
        return Wallet(*WALLET.moved((self.balance, self.held, self.spent), kind, amount, sign))


@dataclass
class LedgerReplay:
    wallet: Wallet
    trimmed: bool = False  # the oldest movements are gone: replayed from the first kept entry's checkpoint
    breaks: list[str] = field(default_factory=list)
    authorized_orders: list[str] = field(default_factory=list)  # orders with an authorize entry kept
    entries: int = 0


def replay_ledger(entries: Iterable[Mapping[str, str]], opening: int) -> LedgerReplay:
    """The wallet the kept entries prove, from the opening balance or from the trimmed ledger's
    checkpoint (see the module docstring)."""
    kept = list(entries)
    chain = replay_chain(kept, (opening, 0, 0), WALLET)
    return LedgerReplay(
        Wallet(*chain.totals),
        trimmed=chain.trimmed,
        breaks=chain.breaks,
        authorized_orders=[e.get("order", "") for e in kept if e.get("type") == "authorize"],
        entries=chain.entries,
    )


# ----- the campaign subsidy: subsidy:{campaign}:ledger

GRANTED, RELEASED = "subsidy_granted", "subsidy_released"
SUBSIDY = LedgerShape(("budget",), {GRANTED: (-1,), RELEASED: (1,)})
USE_MOVES: Mapping[str, int] = {GRANTED: 1, RELEASED: -1}  # change of the user's use count per entry


@dataclass
class SubsidyReplay:
    """What the kept subsidy ledger proves."""

    opening: int  # the budget the replay started from (the checkpoint when trimmed)
    budget_left: int
    trimmed: bool = False
    breaks: list[str] = field(default_factory=list)
    entries: int = 0
    first_seq: int = 0
    granted: dict[str, tuple[str, int]] = field(default_factory=dict)  # order -> (user, amount), net
    grants_per_order: dict[str, int] = field(default_factory=dict)  # subsidy_granted entries kept, per order
    orders: set[str] = field(default_factory=set)  # every order with an entry kept
    # Each user's use count after the ledger (untrimmed: counted from 0 for every user; trimmed: only the
    # users with an entry kept, from their first kept entry's recorded count).
    uses: dict[str, int] = field(default_factory=dict)


def replay_subsidy_ledger(entries: Iterable[Mapping[str, str]], budget_fen: int = 0) -> SubsidyReplay:
    """The campaign's budget left, net grants and use counts the kept entries prove, from the campaign's
    budget (`budget_fen`) or from the trimmed ledger's checkpoint. Each entry's recorded use count must
    follow the user's previous one (trimmed: from the user's first kept entry)."""
    kept = list(entries)
    chain = replay_chain(kept, (budget_fen,), SUBSIDY)
    out = SubsidyReplay(
        chain.opening[0],
        chain.totals[0],
        trimmed=chain.trimmed,
        breaks=list(chain.breaks),
        entries=chain.entries,
        first_seq=chain.first_seq,
    )
    uses: dict[str, int] = {}
    for entry in kept:
        kind, order, user = entry.get("type"), entry.get("order", ""), entry.get("user", "")
        out.orders.add(order)
        if kind == GRANTED:
            out.granted[order] = (user, _amount(entry))
            out.grants_per_order[order] = out.grants_per_order.get(order, 0) + 1
        elif kind == RELEASED:
            out.granted.pop(order, None)
        step = USE_MOVES.get(kind or "", 0)
        try:
            recorded: int | None = int(entry["uses"])
        except (KeyError, ValueError):
            recorded = None
        if user not in uses:
            if out.trimmed and recorded is None:
                continue  # trimmed, and nothing recorded to start this user from
            uses[user] = recorded - step if out.trimmed and recorded is not None else 0
        uses[user] += step
        if recorded is not None and recorded != uses[user]:
            out.breaks.append(
                f"{kind} of {order} (seq {_seq(entry)}) recorded uses={recorded} for {user},"
                f" replayed uses={uses[user]}"
            )
    out.uses = uses
    return out
