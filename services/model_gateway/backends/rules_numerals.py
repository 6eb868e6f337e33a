"""Quantities: digits ("2", "x2", "3x"), English number words ("a couple of", "a dozen") and
Chinese numerals ("两", "十二"), each with the unit or measure word that follows it
("2 nights" -> nights, "三个人" -> passengers, "两杯" -> a container count).

Approximate numbers ("2-3", "两三杯", "一两杯") are vague (value None: ask), and a number that
gives the size of a pack ("a 12-pack", "packs of 20", "12瓶装", "一箱12瓶") is a size, never a count."""

from __future__ import annotations

import re
from dataclasses import dataclass

from yiju.model_gateway.backends.rules_text import Span, has_cjk

COUNT, NIGHTS, PASSENGERS = "count", "nights", "passengers"

_SMALL = [
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"),
]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
EN_SMALL = {word: value for value, word in enumerate(_SMALL)}
EN_TENS = {word: 20 + 10 * i for i, word in enumerate(_TENS)}
_ONES = "|".join(_SMALL[1:10])
_BIG = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_EN_VALUES: dict[str, int | None] = {
    **EN_SMALL,
    **EN_TENS,
    **{f"{tens} {one}": EN_TENS[tens] + EN_SMALL[one] for tens in _TENS for one in _SMALL[1:10]},
    **dict.fromkeys(("a couple", "a couple of", "couple of"), 2),
    **dict.fromkeys(("a few", "several", "a bunch of", "a handful of"), None),
    **{f"{a}{word}": value for a in ("", "a ", "one ") for word, value in _BIG.items()},
    "half a dozen": 6,
    "dozen": 12,
}

_EN_WORDS = re.compile(
    r"(?=[abchmstfenozd])(?<![a-z0-9'])(?:(?P<couple>a couple(?: of)?|couple of)|(?P<half>half a dozen)"
    r"|(?P<vague>a few|several|a bunch of|a handful of)"
    r"|(?P<big>(?:a |one )?(?:hundred|thousand|million|billion|trillion))"
    rf"|(?P<tens>{'|'.join(_TENS)})(?: (?P<tens_one>{_ONES}))?"
    rf"|(?P<small>{'|'.join(sorted(_SMALL, key=len, reverse=True))})|(?P<article>an?)|(?P<bare_dozen>dozen))"
    r"(?P<dozen> dozen)?(?![a-z0-9'])"
)
_DIGITS = re.compile(
    r"(?=[x×*\-−0-9])(?<![a-z0-9.:$¥#/=_\-])(?P<pre>[x×*]\s*)?(?P<num>[-−]?\d+)(?P<post>\s*[x×*](?![a-z0-9]))?"
    r"(?![0-9a-z.:%/])"
)
_ZH_NUM = re.compile(r"[零〇一二两俩仨三四五六七八九十百千万亿几]+")
_ZH_SMALL_UNITS = {"十": 10, "百": 100, "千": 1000}
_ZH_BIG_UNITS = {"万": 10_000, "亿": 100_000_000}
_ZH_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "俩": 2, "仨": 3, "三": 3, "四": 4, "五": 5}
_ZH_DIGIT.update({"六": 6, "七": 7, "八": 8, "九": 9})
_MONEY = re.compile(
    r"\s*(?=[a-z块元毛角%])(?:yuan|rmb|cny|usd|dollars?|bucks|kuai|percent|块钱|元|毛|角|%)(?![a-z])"
)
_UNIT = re.compile(
    r"\s*(?=[a-z个晚夜宿天人位打枚只颗杯份瓶袋盒张碗箱斤双对套包盘提听罐桶屉笼串台部件辆条间副本块])"
    r"(?:(?P<days>天|days?)|(?P<nights>个晚上|晚|夜|宿|nights?|evenings?)"
    r"|(?P<pax>个人|人|位|people|persons?|passengers?|adults?|pax|guests?)"
    r"|(?P<dozen>打|dozens?)"
    r"|(?P<item>个|枚|只|颗|pcs|pieces?)"
    r"|(?P<box>杯|份|瓶|袋|盒|张|碗|箱|斤|双|对|套|包|盘|提|听|罐|桶|屉|笼|串|台|部|件|辆|条|间|副|本|块"
    r"|cups?|bottles?|packs?|boxes|box|bags?|plates?|bowls?|sets?|pairs?|orders?|portions?|servings?"
    r"|cases?|cartons?|packets?|pies?|trays?|tickets?|seats?|rooms?|cans?|jars?|units?|slices?))(?![a-z])"
)
# English container words under the Chinese measure word they match, so that "bottles" and "瓶"
# compare with the measure a pack's catalog name counts its pieces in ("12瓶装").
_MEASURES = {"bottle": "瓶", "can": "罐", "cup": "杯", "bag": "袋", "box": "盒", "pack": "包", "packet": "包"}
_MEASURES.update({"case": "箱", "carton": "箱", "plate": "盘", "bowl": "碗", "set": "套", "pair": "对"})
_MEASURES.update({"pc": "个", "piece": "个"})
_DIGIT_RANGE = re.compile(
    r"(?=[0-9])(?<![a-z0-9.:$¥#/=_\-])\d+\s*(?:-|–|~|〜|到|至|to)\s*\d+(?![0-9a-z.:%/])"
)
_ZH_APPROXIMATE = re.compile(r"[一二两三四五六七八九]{2}")  # "两三", "一两": about, not 23 or 12
_SIZE_AFTER = re.compile(r"(?:-packs?(?![a-z])|\s*装)")  # "12-pack", "12瓶装", "20个装"
_SIZE_BEFORE = re.compile(
    r"(?:(?<![a-z])(?:packs?|packets?|boxes|box|bags?|plates?|cases?|cartons?|trays?) of|[箱包盒袋盘提])\s*$"
)
_EACH_BEFORE = ("各", "各来", "各要")
_FOR = ("for ",)
_EACH_AFTER = re.compile(r"\s*(?:each|apiece)(?![a-z])")


@dataclass(slots=True)
class Qty:
    """One quantity as said. value None means vague ("a few", "几杯"): ask, do not guess."""

    value: int | None
    unit: str = COUNT
    items: bool = True  # counted in single items ("12 eggs", "十二个"), not in containers ("2 boxes")
    article: bool = False  # "a"/"an": a weak 1 that "x2" may override
    multiplier: bool = False  # "x2", "×3", "2x"
    adjacent_only: bool = False  # a bare Chinese numeral counts only right before a product
    each: bool = False  # "各两份", "two each": for every product named before it
    unit_end: int = 0  # where the measure word ends
    measure: str = ""  # the measure word said, as a Chinese one ("bottles" -> 瓶, "pieces" -> 个)
    days: bool = False  # "3天", "3 days": a stay counted in days, not nights
    size: bool = False  # the size of a pack ("12-pack", "packs of 20"), not how many
    range_of_days: bool = False  # nights counted from a range of days ("from friday to sunday")
    afterthought: bool = False  # a number said again in a clause of its own ("2 lattes, 3 cups")
    before_fix: bool = False  # in the fragment right before a self-correction ("six cans of... no")


def zh_to_int(numeral: str) -> int:
    """Chinese numerals: 两 2, 十二 12, 二十 20, 一百零五 105, 一万 10000."""
    total, section, digit = 0, 0, 0
    for ch in numeral:
        if ch in _ZH_SMALL_UNITS:
            section += (digit or 1) * _ZH_SMALL_UNITS[ch]
            digit = 0
        elif ch in _ZH_BIG_UNITS:
            total += ((section + digit) or 1) * _ZH_BIG_UNITS[ch]
            section = digit = 0
        else:
            digit = digit * 10 + _ZH_DIGIT[ch] if digit else _ZH_DIGIT[ch]
    return total + section + digit


def find_quantities(text: str) -> list[Span]:
    """Every quantity in (masked) text; the span covers the number, Qty.unit_end its measure word."""
    found = [_with_unit(text, m.start(), m.end(), _en_word_value(m)) for m in _EN_WORDS.finditer(text)]
    ranges = [(m.start(), m.end()) for m in _DIGIT_RANGE.finditer(text) if not _MONEY.match(text, m.end())]
    found += [_with_unit(text, start, end, Qty(None)) for start, end in ranges]
    for m in _DIGITS.finditer(text):
        if not _MONEY.match(text, m.end()) and not any(a <= m.start() < b for a, b in ranges):
            qty = Qty(
                int(m.group("num").replace("−", "-")), multiplier=bool(m.group("pre") or m.group("post"))
            )
            found.append(_with_unit(text, m.start(), m.end(), qty))
    for m in _ZH_NUM.finditer(text) if has_cjk(text) else ():
        if _MONEY.match(text, m.end()):
            continue
        word = m.group()
        vague = "几" in word or _ZH_APPROXIMATE.search(word) is not None
        qty = Qty(None if vague else zh_to_int(word))
        span = _with_unit(text, m.start(), m.end(), qty)
        if span.value.unit_end == m.end() and word not in ("俩", "仨"):
            if qty.value is None:
                continue
            qty.adjacent_only = True
        found.append(span)
    found.sort(key=lambda s: s.start)
    _mark_sizes(text, found)
    return found


def _mark_sizes(text: str, spans: list[Span]) -> None:
    """A number that says how big a pack is: "two 12-packs", "a pack of 12 bottles", "12瓶装",
    "一箱12瓶的"; what follows such a number is a size, not a second quantity."""
    for span in spans:
        qty = span.value
        if qty.value is None or qty.unit != COUNT:
            continue
        before = text[max(0, span.start - 10) : span.start]
        qty.size = bool(_SIZE_AFTER.match(text, qty.unit_end) or _SIZE_BEFORE.search(before))


def _measure(word: str) -> str:
    """The Chinese measure word of a container word: "bottles" -> 瓶, "boxes" -> 盒, 瓶 -> 瓶."""
    singular = word.removesuffix("es") if word.endswith("xes") else word.rstrip("s")
    return _MEASURES.get(singular, word)


def _en_word_value(m: re.Match[str]) -> Qty:
    words = m.group()
    dozen = m.group("dozen") is not None
    base = words[: -len(" dozen")] if dozen else words
    if base in ("a", "an"):
        return Qty(12) if dozen else Qty(1, article=True)
    value = _EN_VALUES[base]
    return Qty(value * 12 if dozen and value is not None else value)


def _with_unit(text: str, start: int, end: int, qty: Qty) -> Span:
    qty.unit_end = end
    qty.each = text[max(0, start - 3) : start].rstrip().endswith(_EACH_BEFORE)
    unit = _UNIT.match(text, end)
    if unit:
        qty.unit_end = unit.end()
        kind = unit.lastgroup
        if kind in ("nights", "days"):
            qty.unit, qty.days, qty.measure = NIGHTS, kind == "days", unit.group().strip()
        elif kind == "pax":
            qty.unit = PASSENGERS
        elif kind == "dozen" and qty.value is not None:
            qty.value *= 12
        elif kind == "box":
            qty.items = False
            qty.measure = _measure(unit.group().strip())
        elif kind == "item":
            qty.measure = _measure(unit.group().strip())  # "6 pieces" -> 个: pieces said as such
        if kind in ("nights", "days", "pax", "dozen"):
            qty.article = False
    elif text.endswith(_FOR, 0, start):
        qty.unit = PASSENGERS  # "pizza for two", "tickets for four": people, not pieces
    if "each" in text or "apiece" in text:
        qty.each = qty.each or bool(_EACH_AFTER.match(text, qty.unit_end))
    return Span(start, end, "qty", qty, text[start:end])
