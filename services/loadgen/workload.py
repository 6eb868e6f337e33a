"""Sentences for a load test: English and Chinese templates filled from the catalog, drawn Zipf-like.

Nothing names a product here: every sentence is a template filled with a catalog name or alias
(English templates take the ASCII terms, Chinese templates the CJK ones), so the workload follows
the catalog. With `validate` (the default) each candidate is read by the rules backend and priced,
and only sentences that become a plan without a question are kept, so under the rules backend every
sentence can reach COMPLETED. A few popular sentences make up most of the traffic (Zipf, exponent
`zipf_s`), as in a real promotion, which also exercises the gateway's cache.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from yiju.common.catalog import Catalog, Product, User

EN_LOCALE, ZH_LOCALE = "en-SG", "zh-CN"
EN_QUANTITIES = ("a", "one", "two", "2", "3")
ZH_QUANTITIES = ("一", "两", "三")
EN_COUNTS = ("2", "two", "3")  # people, tickets, nights
ZH_COUNTS = ("两", "三")
EN_PLACES = ("office", "home")
ZH_PLACES = ("公司", "家")
EN_TIMES = ("7pm", "8am", "6:30pm")
ZH_TIMES = ("晚上7点", "早上8点")

# Template families; {q} quantity, {n} count, {t} catalog term, {p} saved place, {h} time of day.
EN_ITEM = (
    "order {q} {t}",
    "order {q} {t} to my {p}",
    "{q} {t} delivered to my {p} please",
    "get me {q} {t}",
    "buy {q} {t}",
)
ZH_ITEM = ("{q}份{t}送到{p}", "来{q}份{t}", "帮我买{q}个{t}", "{t}{q}份")
EN_RIDE = ("book a {t} to my {p} at {h}", "get me a {t} home", "{t} to the {p} at {h}")
ZH_RIDE = ("{t}去{p}", "{h}{t}回家")
EN_TRIP = ("book a {t} for {n} people", "{t}, {n} tickets")
ZH_TRIP = ("{t}{n}张",)
EN_STAY = ("book a {t} for {n} nights", "{t} for {n} nights")
ZH_STAY = ("{t}住{n}晚",)
EN_PAIR = "{q} {t} and {q2} {t2} to my {p}"
ZH_PAIR = "{q}份{t}和{q2}份{t2}送到{p}"


@dataclass(frozen=True, slots=True)
class Sentence:
    text: str
    locale: str
    skus: tuple[str, ...] = ()  # what the rules backend read (when validated)
    total_fen: int = 0


def is_cjk(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" for ch in text)


def _families(product: Product, zh: bool) -> tuple[str, ...]:
    if product.vertical == "ride":
        return ZH_RIDE if zh else EN_RIDE
    if product.vertical == "travel" and product.unit == "night":
        return ZH_STAY if zh else EN_STAY
    if product.vertical == "travel":
        return ZH_TRIP if zh else EN_TRIP
    return ZH_ITEM if zh else EN_ITEM


def _fill(template: str, rng: random.Random, zh: bool, **terms: str) -> str:
    return template.format(
        q=rng.choice(ZH_QUANTITIES if zh else EN_QUANTITIES),
        q2=rng.choice(ZH_QUANTITIES if zh else EN_QUANTITIES),
        n=rng.choice(ZH_COUNTS if zh else EN_COUNTS),
        p=rng.choice(ZH_PLACES if zh else EN_PLACES),
        h=rng.choice(ZH_TIMES if zh else EN_TIMES),
        **terms,
    )


def candidate_sentences(catalog: Catalog, seed: int = 7, pairs: int = 120) -> list[Sentence]:
    """Every template filled with every catalog term of its language (plus some two-item orders)."""
    rng = random.Random(seed)
    out: list[Sentence] = []
    items: dict[bool, list[str]] = {True: [], False: []}
    for product in sorted(catalog.products.values(), key=lambda p: p.sku):
        for term in dict.fromkeys(t.strip() for t in product.terms if t.strip()):
            zh = is_cjk(term)
            if not zh and not term.isascii():
                continue
            if product.vertical not in ("ride", "travel"):
                items[zh].append(term)
            for template in _families(product, zh):
                out.append(Sentence(_fill(template, rng, zh, t=term), ZH_LOCALE if zh else EN_LOCALE))
    for zh, terms in items.items():
        if len(terms) < 2:
            continue
        for _ in range(pairs // 2):
            t, t2 = rng.sample(terms, 2)
            text = _fill(ZH_PAIR if zh else EN_PAIR, rng, zh, t=t, t2=t2)
            out.append(Sentence(text, ZH_LOCALE if zh else EN_LOCALE))
    return list({s.text: s for s in out}.values())


def validate_sentences(
    sentences: Iterable[Sentence], catalog: Catalog, user: User, max_total_fen: int | None = None
) -> list[Sentence]:
    """Keeps the sentences the rules backend turns into a priced plan (no question, within limits)."""
    from yiju.model_gateway.backends.rules import RulesBackend
    from yiju.model_gateway.tools import ParseRequest
    from yiju.planning.pricing import CatalogIndex, price_lines

    backend, index = RulesBackend(catalog), CatalogIndex.build(catalog)
    kept: list[Sentence] = []
    for sentence in sentences:
        request = ParseRequest(
            text=sentence.text,
            locale=sentence.locale,
            user_id=user.id,
            tenant_id=user.id,
            address_labels=tuple(user.addresses),
        )
        result = backend.parse_one(request)
        if result.needs_clarification or not result.actions:
            continue
        try:
            lines = price_lines(result.actions, user, catalog, index)
        except ValueError:
            continue
        total = sum(line.line_total_fen for line in lines)
        if not lines or total <= 0 or (max_total_fen is not None and total > max_total_fen):
            continue
        kept.append(Sentence(sentence.text, sentence.locale, tuple(ln.sku for ln in lines), total))
    return kept


class Workload:
    """A fixed set of sentences drawn with Zipf weights: the k-th most popular has weight 1/k^s."""

    def __init__(self, sentences: Sequence[Sentence], zipf_s: float = 1.1, seed: int = 11) -> None:
        if not sentences:
            raise ValueError("the workload has no sentences")
        order = list(sentences)
        random.Random(seed).shuffle(order)  # which sentences are popular: fixed by the seed
        self.sentences = order
        self.zipf_s = zipf_s
        weights = [1.0 / (k**zipf_s) for k in range(1, len(order) + 1)]
        self._cumulative = list(itertools.accumulate(weights))
        self._rng = random.Random(seed + 1)

    @classmethod
    def from_catalog(
        cls,
        catalog: Catalog,
        user: User,
        *,
        zipf_s: float = 1.1,
        seed: int = 11,
        validate: bool = True,
        max_total_fen: int | None = None,
    ) -> Workload:
        candidates = candidate_sentences(catalog, seed=seed)
        chosen = validate_sentences(candidates, catalog, user, max_total_fen) if validate else candidates
        return cls(chosen, zipf_s=zipf_s, seed=seed)

    def draw(self) -> Sentence:
        total = self._cumulative[-1]
        return self.sentences[bisect.bisect_left(self._cumulative, self._rng.random() * total)]

    def share_of_top(self, k: int) -> float:
        """The share of draws that fall on the k most popular sentences."""
        k = max(1, min(k, len(self.sentences)))
        return self._cumulative[k - 1] / self._cumulative[-1]

    def languages(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.sentences:
            counts[s.locale] = counts.get(s.locale, 0) + 1
        return counts
