"""How many units an order item asks for, and how many nights a stay is, when a sentence says
it in more than one way. Where two readings give different numbers this raises Disagree, and
the backend asks instead of guessing: a wrong quantity that completes is the worst outcome.

Units: a count of packs is a count of packs ("12 packs of water", "四箱水", "二十包红包"). A count
of the single pieces a pack holds, whether counted as things ("24 eggs", "四十个红包") or in a
one-piece container ("24 bottles of water", "二十四瓶水", "cans", "罐"), becomes packs when it fills
whole packs and is asked about, naming the pack size, when it does not ("6 eggs", "4 bottles of
water", "四瓶水", "一瓶矿泉水"): charging 48 bottles for "4 bottles" would be a wrong quantity that
completes. A bare count with no measure word is a count of the catalog's selling unit ("four
waters", "4 water"), except for a product whose name is its piece ("6 eggs", "30 red envelopes",
"30 dumplings": eggs, envelopes and dumplings are counted as things); "a"/"one" with no measure
word is one selling unit ("a shrimp dumplings", "one pork dumplings", "a water") but one piece
before a singular ("an egg", "one red envelope": asks), and a name that states its pack ("3 red
envelopes (pack of 20)", "两个矿泉水12瓶装") is counted in packs. A pack size said with the product
("two 12-packs", "20个装") must be the catalog's.

Nights: "2 nights", "两晚", "两宿"; Chinese days count as nights ("住三天" is three nights, the way
hotels there sell them); English days alone are asked about ("for 3 days": 2 nights or 3?);
"3 days and 2 nights" / "三天两晚" is 2; a range of days ("from friday to sunday") is its nights.
"""

from __future__ import annotations

from yiju.model_gateway.backends.rules_lexicon import ProductInfo
from yiju.model_gateway.backends.rules_numerals import Qty
from yiju.model_gateway.backends.rules_reading import Item


class Disagree(Exception):
    """Two readings of a quantity give different numbers; pack is the pack size when the readings
    are pieces against packs (the question then names it), else 0."""

    def __init__(self, pack: int = 0) -> None:
        super().__init__(pack)
        self.pack = pack


def units_of(item: Item, product: ProductInfo, singular: bool = False) -> int | None:
    """Units to order (None when vague); Disagree when the sentence's readings differ. singular:
    the product is named by the singular of a plural catalog term ("egg" of "eggs")."""
    named = any(ch.isdigit() for ch in item.query)  # "free-range eggs (12)", "红包（20个装）"
    units = 1 if item.count is None else packs(item.count, product, named)
    if singular and item.count is not None and _one_piece_named(item.count, product):
        raise Disagree(product.pack)  # "an egg", "one egg", "a red envelope": one piece of a pack
    if product.pack and any(size.value != product.pack for size in item.sizes):
        raise Disagree(product.pack)  # "two 6-packs of water" when water comes in twelves
    if any(packs(other, product, named) != units for other in item.restated):
        raise Disagree  # "3 lattes x2", "a dozen eggs, 2 boxes"
    return units


_ITEM_MEASURES = frozenset("个枚只颗")  # pieces counted as things ("eggs"), not in containers
_PIECE_MEASURES = _ITEM_MEASURES | frozenset("瓶罐听")  # one piece each: "a bottle", "a can", "一听"


def packs(qty: Qty, product: ProductInfo, pack_named: bool = False) -> int | None:
    """Packs for one count said: pieces that fill whole packs become packs, other piece counts
    raise Disagree (with the pack size); counts of packs or of the selling unit stay as said.
    pack_named: the product was named with its pack ("3 red envelopes (pack of 20)": 3 packs)."""
    pack, value = product.pack, qty.value
    if value is None or not pack or qty.multiplier or value < 1:
        return value
    if not _counts_pieces(qty, product) or (pack_named and qty.measure in ("", "个")):
        return value
    if value % pack:
        raise Disagree(pack)  # "6 eggs", "4 bottles of water": eggs and water come in twelves
    return value // pack  # "24 eggs", "24 bottles of water": two packs


def _one_piece_named(qty: Qty, product: ProductInfo) -> bool:
    """ "an egg", "one egg": one before the singular of a product counted as things is one piece
    ("a shrimp dumplings", "one pork dumplings", plural, is one plate)."""
    one = qty.article or (qty.value == 1 and qty.items)
    return one and not qty.measure and bool(product.pack) and _named_by_piece(product)


def _counts_pieces(qty: Qty, product: ProductInfo) -> bool:
    """Whether a count is of the single pieces a pack holds rather than of packs."""
    if qty.measure:
        return qty.measure in _PIECE_MEASURES or qty.measure == product.piece  # "4 bottles", "六个"
    if qty.article or not qty.items or qty.value == 1:
        return False  # "a shrimp dumplings", "one pork dumplings": one plate (but "one egg", above)
    return _named_by_piece(product)  # "24 eggs", not "four waters"


def _named_by_piece(product: ProductInfo) -> bool:
    """Eggs, dumplings, red envelopes: the product's name is its piece, counted as things; water
    (counted in 瓶) is not."""
    return not product.piece or product.piece in _ITEM_MEASURES


def nights_of(stays: list[Qty]) -> int | None:
    """Nights of a hotel stay (1 when nothing is said, None when vague)."""
    if not stays:
        return 1
    if any(q.value is None for q in stays):
        return None
    said = {q.value for q in stays if not q.days}
    days = {q.value for q in stays if q.days}
    if len(said) > 1 or len(days) > 1:
        raise Disagree  # "2 nights from friday to monday"
    if said:
        (nights,) = said
        if days and not days <= {nights, nights + 1}:
            raise Disagree
        return nights
    if any(q.days and q.measure.isascii() for q in stays):
        raise Disagree  # "for 3 days": two nights or three?
    (nights,) = days
    return nights
