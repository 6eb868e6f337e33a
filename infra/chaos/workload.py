"""What a chaos run submits: a seeded mix of sentences whose right ending is known in advance."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from enum import StrEnum

from yiju.common.catalog import synthetic_user_id

BIG_WALLET_USER = "u-1004"  # large wallet, but a per-day limit: it gets the cheap successes only
SMALL_WALLET_USER = "u-1003"  # 10 CNY: anything dearer is declined
LOW_LIMIT_USER = "u-1002"  # per-order limit 500 CNY
CONFIRMING_USER = "u-1001"  # confirms above 1,000 CNY
FAILING_SKU = "fest-lanterns"  # the run injects YIJU_FULFILMENT_FAIL_SKUS=fest-lanterns


class Kind(StrEnum):
    SUCCESS = "success"
    DECLINE = "decline"
    CLARIFY = "clarify"
    REJECT = "reject"
    FAIL = "fail"
    CONFIRM = "confirm"  # waits for confirmation; the driver confirms it
    CANCEL = "cancel"  # waits for confirmation; the driver cancels it
    EXPIRE = "expire"  # waits for confirmation; nobody answers, the sweeper expires it
    REFUND = "refund"  # completes; the driver then refunds it (POST /v1/orders/{id}/refund)


EXPECTED: dict[Kind, frozenset[str]] = {
    Kind.SUCCESS: frozenset({"COMPLETED"}),
    Kind.DECLINE: frozenset({"PAYMENT_DECLINED"}),
    Kind.CLARIFY: frozenset({"NEEDS_CLARIFICATION"}),
    Kind.REJECT: frozenset({"REJECTED"}),
    Kind.FAIL: frozenset({"FAILED"}),
    # u-1001's wallet covers four confirmed orders; later ones are declined; a late one is rejected.
    Kind.CONFIRM: frozenset({"COMPLETED", "PAYMENT_DECLINED", "REJECTED"}),
    Kind.CANCEL: frozenset({"CANCELLED"}),
    Kind.EXPIRE: frozenset({"CANCELLED"}),
    # The money back in the wallet, the subsidy back in the budget (reconcile proves both).
    Kind.REFUND: frozenset({"REFUNDED"}),
}
# Kinds the driver acts on after the order settles, and the status it acts on.
ANSWERED: dict[Kind, str] = {
    Kind.CONFIRM: "AWAITING_CONFIRMATION",
    Kind.CANCEL: "AWAITING_CONFIRMATION",
    Kind.REFUND: "COMPLETED",
}
# The only orders the sweeper settles by design: confirmations left to expire.
SWEPT_BY_DESIGN: frozenset[str] = frozenset({Kind.EXPIRE})

CHEAP = [
    "one latte",
    "a jasmine green tea",
    "one americano",
    "一杯拿铁",
    "one mango slush",
    "a coconut latte",
]
SUCCESS = [
    *CHEAP,
    "order two bubble teas and a latte to my office",
    "a bag of rice and a dozen eggs",
    "book a taxi home at 7pm",
    "two americanos to the office",
    "three plates of pork dumplings",
    "a pepperoni pizza to my home",
    "a power bank",
    "a train to shenzhen",
    "two bottles of milk and apples",
    "两杯奶茶送到公司",
]
CLARIFY = ["book me a flight to mars", "asdf qwer", "something nice please", "a unicorn to the office"]
FAIL = ["a latte and two red lanterns", "red lanterns", "two bubble teas and red lanterns"]
MIX: tuple[tuple[Kind, float], ...] = (
    (Kind.SUCCESS, 0.67),
    (Kind.DECLINE, 0.07),
    (Kind.CLARIFY, 0.06),
    (Kind.REJECT, 0.06),
    (Kind.FAIL, 0.08),
    (Kind.CONFIRM, 0.01),
    (Kind.CANCEL, 0.01),
    (Kind.EXPIRE, 0.01),
    (Kind.REFUND, 0.03),
)


@dataclass(frozen=True)
class Sentence:
    index: int
    kind: Kind
    user_id: str
    text: str
    idempotency_key: str
    resubmit: bool = False  # submitted a second time with the same key (must return the same order)

    def body(self) -> dict[str, str]:
        return {"user_id": self.user_id, "text": self.text, "idempotency_key": self.idempotency_key}


def build(
    count: int, *, seed: int = 7, synthetic_users: int = 200, resubmit_share: float = 0.03
) -> list[Sentence]:
    """`count` sentences in a reproducible order; every one has its own idempotency key."""
    rng = random.Random(seed)
    run = uuid.UUID(int=rng.getrandbits(128)).hex[:8]
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    out = []
    big_wallet_every = 12  # ~8% of the successes go to u-1004 (its daily limit is 30,000 CNY)
    for i in range(count):
        kind = rng.choices(kinds, weights)[0]
        synthetic = synthetic_user_id(rng.randint(1, synthetic_users)) if synthetic_users else BIG_WALLET_USER
        if kind is Kind.REFUND:
            user, text = (
                (synthetic, rng.choice(SUCCESS)) if synthetic_users else (BIG_WALLET_USER, "one latte")
            )
        elif kind is Kind.SUCCESS:
            if i % big_wallet_every == 0 or not synthetic_users:
                user, text = BIG_WALLET_USER, rng.choice(CHEAP)
            else:
                user, text = synthetic, rng.choice(SUCCESS)
        elif kind is Kind.DECLINE:
            user, text = (
                SMALL_WALLET_USER,
                rng.choice(["one latte", "a pepperoni pizza", "three plates of pork dumplings"]),
            )
        elif kind is Kind.CLARIFY:
            user, text = synthetic, rng.choice(CLARIFY)
        elif kind is Kind.REJECT:
            user, text = rng.choice(
                [(LOW_LIMIT_USER, "buy a flagship smartphone"), (BIG_WALLET_USER, "two flagship smartphones")]
            )
        elif kind is Kind.FAIL:
            user, text = synthetic, rng.choice(FAIL)
        else:
            user, text = CONFIRMING_USER, "three pairs of earbuds"
        out.append(Sentence(i, kind, user, text, f"chaos-{run}-{i}", resubmit=rng.random() < resubmit_share))
    return out
