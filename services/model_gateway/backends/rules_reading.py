"""Reads one normalised sentence into the items it asks for, before they become tool calls.

1. Recognise spans on progressively masked text: products first (longest match), then
   self-corrections, "or", times, saved places, cities, rail/hotel cue words, quantities and
   clause separators.
2. Cut the sentence into parts at self-corrections and into clauses at separators.
3. Make one item per product mention, plus a train or hotel item announced only by cue words
   ("2 tickets shanghai to hangzhou"); a clause with no item lends its places, times and
   quantities to its neighbour ("两杯奶茶，送到公司").
4. Give each item its quantity: a clause that starts with a number reads "2 lattes", one that
   starts with a product reads "奶茶两杯" / "lattes x2".
5. Apply the corrections: a later part replaces the item it names (same product) or the last
   item, or, holding only a number, place or time, changes the item it names ("拿铁改成两杯",
   "change the slushes to one") or else the last item. It keeps what it does not restate ("two
   lattes, no, americanos" is two americanos), takes off what it negates ("sorry, no apples"),
   and after an unfinished fragment ("a hotpot and six cans of... no, a pack of water") it replaces
   the fragment, not the item before it.

The same product named in two clauses stays two items; named twice in one clause it is one.
A quantity said two ways ("3 lattes x2", "a dozen eggs, 2 boxes") is kept twice (Item.restated)
so that the caller can ask when the two disagree.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

from yiju.model_gateway.backends.rules_lexicon import HOTEL, RAIL, RIDE, Lexicon
from yiju.model_gateway.backends.rules_numerals import COUNT, NIGHTS, Qty, find_quantities
from yiju.model_gateway.backends.rules_places import find_places
from yiju.model_gateway.backends.rules_stays import find_stays
from yiju.model_gateway.backends.rules_text import (
    ALTERNATIVES,
    CORRECTIONS,
    HOTEL_CUES,
    MODIFIER_BEFORE,
    NEGATION_BEFORE,
    RAIL_CUES,
    REMOVAL_BEFORE,
    SEPARATORS,
    THERE,
    Span,
    find,
    is_cjk,
    mask,
)
from yiju.model_gateway.backends.rules_times import find_times

_GEO_FROM = re.compile(r"(?:(?<![a-z])from|从|由|自)\s*$")
_GEO_TO = re.compile(r"(?:(?<![a-z])(?:to|for)|去|到|往|至|->|→)\s*$")
_CANCEL = ("cancel", "zcancel")
_STAY_VERBS = {"住", "入住", "stay", "staying"}
_LATIN_WORD = re.compile(r"[a-z]+")
_FILLER = {"for", "of", "please", "them", "it", "each", "in", "total", "all", "just"}
_MAX_PREFIX_GAP, _MAX_POSTFIX_GAP = 40, 16
_SOME_BEFORE = re.compile(r"(?<![a-z])some\s*$")
# "来瓶水", "买个鸡蛋": a one-piece measure word with no number before it is one piece
_BARE_PIECE = re.compile(r"(?<![零〇一二两俩仨三四五六七八九十百千万亿几0-9])([瓶罐听个枚只颗])$")
_PLURAL_ENDINGS = ("es", "s")
_ARTICLES = ("a ", "an ")
_SWAP = re.compile(r"\s*(?:to|with|into|for)\s*(?:an?\s+|one\s+)?$")


@dataclass(slots=True)
class Item:
    """One thing the sentence asks for, with what was said about it."""

    kind: str
    sku: str
    query: str
    start: int
    end: int
    clause: int
    count: Qty | None = None
    unit_qty: Qty | None = None  # passengers (train, ride)
    stays: list[Qty] = field(default_factory=list)  # nights, days or a range of days (hotel)
    sizes: list[Qty] = field(default_factory=list)  # pack sizes said ("a 12-pack")
    restated: list[Qty] = field(default_factory=list)  # the count said a second time
    places: list[Span] = field(default_factory=list)
    times: list[Span] = field(default_factory=list)
    geos: list[Span] = field(default_factory=list)
    announced: bool = False  # a train or hotel named by cue words only, not a catalog term
    there: bool = False  # "a train there": its destination is a city named elsewhere
    mention_only: bool = False  # the clause names only this product: "拿铁" in "拿铁改成两杯"


@dataclass(slots=True)
class Clause:
    """A stretch between separators; part counts the self-corrections before it."""

    index: int
    part: int
    start: int
    end: int
    spans: list[Span] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    dangling: bool = False  # ends in a number for no product, right before a correction
    removed: list[str] = field(default_factory=list)  # skus negated here ("no apples")

    def of(self, kind: str) -> list[Span]:
        return [s for s in self.spans if s.kind == kind]


@dataclass(slots=True)
class Reading:
    """The items of a sentence, plus what lowers confidence (notes) or needs a question (choice)."""

    items: list[Item]
    choice: tuple[str, str] | None = None  # "a latte or a green tea": ask which
    notes: set[str] = field(default_factory=set)


def read(text: str, lexicon: Lexicon, labels: tuple[str, ...]) -> Reading:
    products = _heads(text, lexicon.find_products(text))
    masked = mask(text, products)
    fixes = find(CORRECTIONS, masked, "fix")
    masked = mask(masked, fixes)
    info = find_stays(masked)
    masked = mask(masked, info)
    info += find(ALTERNATIVES, masked, "or") + find_times(masked)
    masked = mask(masked, info)
    places = find_places(masked, labels)
    masked = mask(masked, places)
    info += places + [_geo_role(text, g) for g in lexicon.find_geos(text)]
    info += (
        find(RAIL_CUES, masked, "rail_cue")
        + find(HOTEL_CUES, masked, "hotel_cue")
        + find(THERE, masked, "there")
    )
    quantities = find_quantities(masked)
    _vague_alternatives(masked, [s for s in info if s.kind == "or"], quantities)
    info += quantities
    cuts = sorted(find(SEPARATORS, masked, "sep") + fixes, key=lambda s: s.start)

    notes: set[str] = set()
    clauses = _clauses(text, cuts, fixes)
    starts = [c.start for c in clauses]
    for span in info:
        clauses[bisect_right(starts, span.start) - 1].spans.append(span)
    for product in products:
        clause = clauses[bisect_right(starts, product.start) - 1]
        if clause.part and _removes(masked, product, clause):
            clause.removed.append(product.value)  # "..., sorry, no apples", "no, not the americano"
        elif _keeps(masked, product, clause):
            kind = lexicon.products[product.value].kind
            item = Item(kind, product.value, product.text, product.start, product.end, clause.index)
            if _some_of_many(masked, product, lexicon):
                item.count = Qty(None)  # "some lattes": how many is not said
            elif product.text.startswith(_ARTICLES):
                item.count = Qty(1, article=True)  # a catalog term that says "a": "a dozen eggs"
            elif piece := _BARE_PIECE.search(masked[max(0, product.start - 2) : product.start]):
                item.count = Qty(1, article=True, measure=piece.group(1))  # "来瓶水": one bottle
            clause.items.append(item)
            if len(product.text) == 1 and is_cjk(product.text):
                notes.add("single-char")
    for clause in clauses:
        _announced_items(clause)
        _mark_mentions(clause)
    clauses = _merge_orphans(masked, clauses, notes)
    for clause in clauses:
        _attach_quantities(masked, clause, notes)
    _attach_each(clauses)
    for clause in clauses:
        for item in clause.items:
            item.places, item.times = clause.of("place"), clause.of("time")
            item.geos = [g for g in clause.of("geo") if item.kind in (RAIL, HOTEL)]
            item.there = item.kind == RAIL and bool(clause.of("there"))
    _attach_units(clauses)
    items = _merged(_corrected(text, clauses, fixes, notes))
    _resolve_there(items)
    return Reading(items, _choice(clauses), notes)


def _heads(text: str, products: list[Span]) -> list[Span]:
    """Of two products written back to back the first only qualifies the second: "手机充电器" is a
    charger, "苹果手机" a phone."""
    following: list[Span | None] = [*products[1:], None]
    return [
        p for p, q in zip(products, following, strict=False) if q is None or text[p.end : q.start].strip()
    ]


def _some_of_many(masked: str, product: Span, lexicon: Lexicon) -> bool:
    """ "some lattes": how many is not said ("some apples" is a bag of apples)."""
    return bool(_SOME_BEFORE.search(masked[max(0, product.start - 8) : product.start])) and (
        lexicon.is_plural_of_one(product.value, product.text)
    )


def _vague_alternatives(masked: str, alternatives: list[Span], quantities: list[Span]) -> None:
    """ "two or three lattes", "a latte or two", "一杯或两杯": the number is not decided."""
    for alt in alternatives:
        for span in quantities:
            qty = span.value
            after = span.start >= alt.end and not masked[alt.end : span.start].strip()
            before = qty.unit_end <= alt.start and not masked[qty.unit_end : alt.start].strip()
            if qty.unit == COUNT and not qty.article and (after or before):
                qty.value, qty.multiplier = None, after  # "or two" overrides the "a" before it


def _clauses(text: str, cuts: list[Span], fixes: list[Span]) -> list[Clause]:
    fix_starts = [f.start for f in fixes]
    clauses, start = [], 0
    for cut in [*cuts, Span(len(text), len(text), "end")]:
        clauses.append(Clause(len(clauses), bisect_right(fix_starts, start - 1), start, cut.start))
        start = cut.end
    return clauses


def _geo_role(text: str, span: Span) -> Span:
    before = text[max(0, span.start - 6) : span.start]
    role = "from" if _GEO_FROM.search(before) else "to" if _GEO_TO.search(before) else ""
    if not role and text.startswith(("出发", "始发"), span.end):
        role = "from"
    return Span(span.start, span.end, "geo", (span.value, role), span.text)


def _keeps(masked: str, product: Span, clause: Clause) -> bool:
    """Drops negated products ("no milk", "oat milk") and modifiers of an earlier one ("latte with milk")."""
    before = masked[max(clause.start, product.start - 16) : product.start]
    if NEGATION_BEFORE.search(before):
        return False
    return not (clause.items and MODIFIER_BEFORE.search(before))


def _removes(masked: str, product: Span, clause: Clause) -> bool:
    return REMOVAL_BEFORE.search(masked[max(clause.start, product.start - 16) : product.start]) is not None


def _announced_items(clause: Clause) -> None:
    """A train or hotel named only by cue words and places: "train from beijing to shanghai"."""
    kinds = {item.kind for item in clause.items}
    if kinds & {RAIL, HOTEL} or not any(s.kind in ("rail_cue", "hotel_cue", "geo") for s in clause.spans):
        return
    rail_cues, hotel_cues = clause.of("rail_cue"), clause.of("hotel_cue")
    geos = [g for g in clause.of("geo") if g.value[0].city]
    nights = any(q.value.unit == NIGHTS for q in clause.of("qty"))
    if not hotel_cues and (rail_cues or (len(geos) >= 2 and any(g.value[1] for g in geos))):
        marks, named = rail_cues + geos, rail_cues + geos
        kind = RAIL
    elif hotel_cues or (nights and any(g.value[0].hotel_sku for g in clause.of("geo"))):
        marks = hotel_cues + clause.of("geo")
        named = ([c for c in hotel_cues if c.text not in _STAY_VERBS][:1] + clause.of("geo")) or hotel_cues
        kind = HOTEL
    else:
        return
    start, end = min(s.start for s in marks), max(s.end for s in marks)
    words = [s.text for s in sorted(named, key=lambda s: s.start)]
    query = "".join(words) if any(is_cjk(ch) for w in words for ch in w) else " ".join(words)
    clause.items.append(Item(kind, "", query, start, end, clause.index, announced=True))
    clause.items.sort(key=lambda i: i.start)


def _mark_mentions(clause: Clause) -> None:
    """A clause holding one product and nothing else may only point at an earlier item."""
    if len(clause.items) == 1 and not clause.items[0].announced and not clause.spans:
        clause.items[0].mention_only = True


def _residual(masked: str, clause: Clause) -> int:
    """How many words of the clause nothing recognised: none for "两杯" or "2 cups", many for chatter."""
    chars = list(masked[clause.start : clause.end])
    for span in clause.spans:
        stop = span.value.unit_end if span.kind == "qty" else span.end
        for i in range(max(span.start, clause.start), min(stop, clause.end)):
            chars[i - clause.start] = " "
    rest = "".join(chars)
    return sum(1 for ch in rest if is_cjk(ch)) + sum(1 for w in _LATIN_WORD.findall(rest) if w not in _FILLER)


def _is_orphan(clause: Clause, clauses: list[Clause]) -> bool:
    """No item, or only a cue-word train/hotel that another clause already names, without a city
    or in the city of that clause's hotel: "订杭州的酒店，住3晚", "明天十点的高铁，上海到杭州",
    "在上海住五天，帮我订外滩酒店"."""
    if not clause.items:
        return True
    if any(not i.announced for i in clause.items):
        return False
    kinds = {i.kind for i in clause.items}
    others = [i for c in clauses if c.part == clause.part and c is not clause for i in c.items]
    cities = [g.value[0] for g in clause.of("geo") if g.value[0].city]
    if not cities:
        return any(i.kind in kinds for i in others)
    hotels = {city.hotel_sku for city in cities}
    return kinds == {HOTEL} and any(i.kind == HOTEL and i.sku in hotels for i in others)


def _is_tail(clause: Clause, clauses: list[Clause]) -> bool:
    """The last non-empty clause of its part, with a self-correction after it."""
    later = [c for c in clauses if c.index > clause.index]
    return any(c.part > clause.part for c in later) and not any(
        c.spans or c.items for c in later if c.part == clause.part
    )


def _merge_orphans(masked: str, clauses: list[Clause], notes: set[str]) -> list[Clause]:
    """A clause without items gives its places and times (and a bare quantity) to a neighbour."""
    kept = [c for c in clauses if not _is_orphan(c, clauses)]
    for clause in clauses:
        if clause in kept:
            continue
        same_part = [c for c in kept if c.part == clause.part]
        if not same_part:
            kept.append(clause)
            continue
        before = [c for c in same_part if c.index < clause.index]
        host = before[-1] if before else same_part[0]
        host.removed += clause.removed
        residual = _residual(masked, clause)
        bare = bool(before) and residual <= 2  # "奶茶，两杯": a number after its product
        tail = _is_tail(clause, clauses)
        for span in clause.spans:
            if span.kind != "qty" or bare or span.value.unit != COUNT:
                host.spans.append(span)
                if span.kind == "qty" and span.value.unit == COUNT:
                    # "2 lattes, 3 cups": right after the product's clause (not "price: 0")
                    span.value.afterthought = residual == 0 and not tail and host.index == clause.index - 1
                    span.value.before_fix = tail
            elif not span.value.article:
                notes.add("loose-number")  # "再来两杯可乐": a number for something not in the catalog
                host.dangling = host.dangling or tail
        host.spans.sort(key=lambda s: s.start)
    return sorted(kept, key=lambda c: c.index)


def _attach_quantities(masked: str, clause: Clause, notes: set[str]) -> None:
    targets = clause.items
    quantities = [q for q in clause.of("qty") if q.value.unit == COUNT and not q.value.each]
    counts = [q for q in quantities if not q.value.size]
    _attach_sizes(clause, [q for q in quantities if q.value.size])
    if not targets or not counts:
        return
    prefix_mode = counts[0].start < targets[0].start
    for q in counts:
        nxt = next((t for t in targets if t.start >= q.end), None)
        prv = next((t for t in reversed(targets) if t.end <= q.start), None)
        order = ((nxt, True), (prv, False)) if prefix_mode else ((prv, False), (nxt, True))
        for target, before in order:
            if target is None or _count_between(counts, q, target, before):
                continue
            if _fits(masked, q, target, before):
                target.count = q.value
                break
        else:
            _unattached(clause, q, prv, notes)


def _unattached(clause: Clause, q: Span, prv: Item | None, notes: set[str]) -> None:
    """A number no product took: a fragment cut off by a correction ("six cans of... no"), the
    count said again ("3 lattes x2", "一打鸡蛋，两盒": kept, to ask if the two disagree), or noise."""
    qty = q.value
    if qty.before_fix:
        clause.dangling = True
    elif prv is not None and prv.count is not None and (qty.multiplier or qty.afterthought):
        prv.restated.append(qty)
    elif not qty.article:
        notes.add("loose-number")


def _attach_sizes(clause: Clause, sizes: list[Span]) -> None:
    """A pack size goes to the product it describes: the next one, else the one before."""
    for q in sizes:
        nxt = next((t for t in clause.items if t.start >= q.end), None)
        prv = next((t for t in reversed(clause.items) if t.end <= q.start), None)
        owner = nxt or prv
        if owner is not None:
            owner.sizes.append(q.value)


def _count_between(counts: list[Span], q: Span, target: Item, before: bool) -> bool:
    """Another number sits between this one and the product: that one is the product's."""
    low, high = (q.end, target.start) if before else (target.end, q.start)
    return any(low <= other.start < high for other in counts if other is not q)


def _attach_each(clauses: list[Clause]) -> None:
    """A number "each" goes to every product before it: "水饺和虾饺各两份", "a latte and a tea, two each"."""
    for clause in clauses:
        for q in clause.of("qty"):
            if q.value.each and q.value.unit == COUNT:
                for item in (i for c in clauses if c.part == clause.part for i in c.items):
                    if item.start < q.start and (item.count is None or item.count.article):
                        item.count = q.value


def _fits(masked: str, q: Span, target: Item, before: bool) -> bool:
    qty = q.value
    if target.count is not None and not (target.count.article and qty.multiplier):
        return False
    if before:
        gap = masked[min(qty.unit_end, target.start) : target.start]
        return not gap.strip() if qty.adjacent_only else len(gap) <= _MAX_PREFIX_GAP
    return not qty.adjacent_only and len(masked[target.end : q.start]) <= _MAX_POSTFIX_GAP


def _attach_units(clauses: list[Clause]) -> None:
    """Nights go to a hotel, passengers to a train (or ride): in the clause, else the nearest one."""
    items = [i for c in clauses for i in c.items]
    for clause in clauses:
        for q in clause.of("qty"):
            unit = q.value.unit
            if unit == COUNT:
                continue
            kinds = (HOTEL,) if unit == NIGHTS else (RAIL, RIDE)
            own = [i for i in clause.items if i.kind in kinds]
            near = sorted((i for i in items if i.kind in kinds), key=lambda i: abs(i.start - q.start))
            for item in own or near[:1]:
                if unit == NIGHTS:
                    item.stays.append(q.value)
                else:
                    item.unit_qty = q.value
                break


def _corrected(text: str, clauses: list[Clause], fixes: list[Span], notes: set[str]) -> list[Item]:
    result: list[Item] = []
    dangling = {c.part for c in clauses if c.dangling}
    for part in sorted({c.part for c in clauses}):
        part_clauses = [c for c in clauses if c.part == part]
        items = [i for c in part_clauses for i in c.items]
        if part == 0 or not result:
            result.extend(items)
            continue
        notes.add("corrected")
        removed = {sku for c in part_clauses for sku in c.removed}
        result[:] = [i for i in result if i.sku not in removed]
        if not result:
            result.extend(items)
            continue
        target = _referenced(result) or _named_by_head(text, part_clauses, result)
        if _swaps(text, items):  # "change the pizza to a durian pizza"
            same = [i for i in result if i.sku == items[0].sku]
            target, items = (same[-1] if same else target), items[1:]
        if items:
            if part - 1 in dangling:
                result.extend(items)  # "a hotpot and six cans of... no, a pack of water"
            else:
                _replace(result, items[0], target)
                result.extend(items[1:])
            continue
        spans = [s for c in part_clauses for s in c.spans]
        if not _amend(result, spans, target) and fixes[part - 1].value in _CANCEL and not removed:
            result.remove(target or result[-1])
    return result


def _swaps(text: str, items: list[Item]) -> bool:
    """The first product only names what the second replaces: "the pizza to a durian pizza"."""
    if len(items) < 2 or (items[0].count is not None and not items[0].count.article):
        return False
    return _SWAP.match(text, items[0].end, items[1].start) is not None


def _referenced(result: list[Item]) -> Item | None:
    """ "三杯拿铁一杯绿茶，拿铁改成两杯": a last clause that only names an earlier product points at it.
    The mention is dropped and the earlier item is returned."""
    last = result[-1]
    if not last.mention_only or last.count is not None:
        return None
    earlier = [i for i in result[:-1] if i.sku == last.sku and i.clause != last.clause]
    if not earlier:
        return None
    result.pop()
    return earlier[-1]


def _named_by_head(text: str, part_clauses: list[Clause], result: list[Item]) -> Item | None:
    """ "two mango slushes and a latte, change the slushes to one": a word of the correction that
    ends an earlier item's name (plural or not) points at that item."""
    said = {_singular(w) for c in part_clauses for w in _LATIN_WORD.findall(text[c.start : c.end])}
    heads = [i for i in result if i.query.isascii() and _singular(i.query.split()[-1]) in said - _FILLER]
    return heads[-1] if heads else None


def _singular(word: str) -> str:
    for ending in _PLURAL_ENDINGS:
        if word.endswith(ending) and len(word) > len(ending) + 2:
            return word[: -len(ending)]
    return word


def _replace(result: list[Item], new: Item, target: Item | None = None) -> None:
    """The corrected item takes the place of the one it names (same product), else of the target
    or the last item, keeping what the correction does not restate."""
    same = [i for i in result if i.sku and i.sku == new.sku]
    old = same[-1] if same else target or result[-1]
    new.places = new.places or old.places
    new.times = new.times or old.times
    if old.kind == new.kind:
        new.geos = new.geos or old.geos
        new.count = new.count if new.count is not None else old.count  # "two lattes, no, americanos"
        new.unit_qty = new.unit_qty or old.unit_qty
        new.stays = new.stays or old.stays
    result[result.index(old)] = new


def _amend(result: list[Item], spans: list[Span], target: Item | None = None) -> bool:
    """A correction holding no product: "sorry, three", "no, to the office", "不对，八点"; it
    changes the item it names, else the last one."""
    last, changed = target or result[-1], False
    stays = [q for q in (s.value for s in spans if s.kind == "qty") if q.unit == NIGHTS]
    for q in (s.value for s in spans if s.kind == "qty"):
        if q.unit == NIGHTS:
            continue
        if last.kind == HOTEL and q.unit == COUNT and q.items:
            stays.append(q)  # "a hotel for 2 nights... make it 4": nights, not rooms
        elif q.unit == COUNT and last.kind != RAIL:
            last.count, changed = q, True
        else:
            last.unit_qty, changed = q, True
    if stays and last.kind == HOTEL:
        last.stays, changed = stays, True
    for kind in ("place", "time"):
        new = [s for s in spans if s.kind == kind]
        if not new:
            continue
        changed = True
        old = max((s for i in result for s in getattr(i, kind + "s")), key=lambda s: s.start, default=None)
        owners = [i for i in result if old is not None and old in getattr(i, kind + "s")] or [last]
        for item in owners:
            setattr(item, kind + "s", [s for s in getattr(item, kind + "s") if s is not old] + new)
    geos = [s for s in spans if s.kind == "geo"]
    if geos and last.kind in (RAIL, HOTEL):
        roles = {g.value[1] or "to" for g in geos}
        last.geos = [g for g in last.geos if (g.value[1] or "to") not in roles] + geos
        changed = True
    return changed


def _resolve_there(items: list[Item]) -> None:
    """A train "there" goes to a city named elsewhere: "a hotel in hangzhou and a train there"."""
    for item in items:
        if not item.there or any(g.value[1] == "to" for g in item.geos):
            continue
        cities = [g for other in items if other is not item for g in other.geos if g.value[0].city]
        if cities:
            last = cities[-1]
            item.geos = [*item.geos, Span(last.start, last.end, "geo", (last.value[0], "to"), last.text)]


def _merged(items: list[Item]) -> list[Item]:
    """One item per product per clause: "jiaozi (pork dumplings)" is one plate."""
    kept: list[Item] = []
    for item in items:
        twin = next((k for k in kept if k.clause == item.clause and k.sku and k.sku == item.sku), None)
        if twin is None:
            kept.append(item)
        elif twin.count is None:
            twin.count = item.count
    return kept


def _choice(clauses: list[Clause]) -> tuple[str, str] | None:
    for clause in clauses:
        for alt in clause.of("or"):
            before = [i for i in clause.items if i.end <= alt.start]
            after = [i for i in clause.items if i.start >= alt.end]
            if before and after:
                return before[-1].query, after[0].query
    return None
