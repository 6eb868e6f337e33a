"""Stays given as a stretch of days rather than a number: "from friday to sunday" (2 nights),
"周五到周一" (3), "tonight and tomorrow night" / "今晚和明晚" (2).

Each stay becomes two spans: a quantity of nights (Qty.range_of_days) and its time, kept as
said from the first day ("friday to sunday", "周五到周日").
"""

from __future__ import annotations

import re

from yiju.model_gateway.backends.rules_numerals import NIGHTS, Qty
from yiju.model_gateway.backends.rules_text import Span

_EN_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_ZH_DAYS = "一二三四五六日"
_ZH_WEEK = r"(?:周|星期|礼拜)"
_EN_RANGE = re.compile(
    rf"(?<![a-z])(?:from\s+)?(?:this\s+|next\s+)?(?P<first>{'|'.join(_EN_DAYS)})"
    rf"\s*(?:to|till|until|through|thru|-)\s*(?:next\s+)?(?P<last>{'|'.join(_EN_DAYS)})(?![a-z])"
)
_ZH_RANGE = re.compile(
    rf"从?(?P<first>(?:这|本|下)?{_ZH_WEEK}[一二三四五六日天])\s*(?:到|至|-|~)\s*"
    rf"(?P<last>(?:这|本|下)?{_ZH_WEEK}?[一二三四五六日天])(?![0-9一二三四五六七八九十])"
)
_TWO_NIGHTS = re.compile(
    r"(?<![a-z])(?P<first>tonight) and tomorrow(?: night)?(?![a-z])|(?P<zh>今晚)[和跟与、]?明晚"
)


def find_stays(text: str) -> list[Span]:
    spans: list[Span] = []
    for m in _EN_RANGE.finditer(text):
        nights = (_EN_DAYS.index(m.group("last")) - _EN_DAYS.index(m.group("first"))) % 7
        spans += _stay(m, nights or None)
    for m in _ZH_RANGE.finditer(text):
        first, last = (_ZH_DAYS.index(m.group(g)[-1].replace("天", "日")) for g in ("first", "last"))
        spans += _stay(m, (last - first) % 7 or None)
    for m in _TWO_NIGHTS.finditer(text):
        spans += _stay(m, 2, "zh" if m.group("zh") else "first")
    return spans


def _stay(m: re.Match[str], nights: int | None, first: str = "first") -> list[Span]:
    """The nights (None when the range is unclear, e.g. "friday to friday") and the first day."""
    qty = Qty(nights, unit=NIGHTS, range_of_days=True, unit_end=m.end())
    said = m.group()[m.start(first) - m.start() :]  # as said, from the first day: "friday to sunday"
    return [
        Span(m.start(), m.end(), "qty", qty, m.group()),
        Span(m.start(first), m.end(), "time", said, said),
    ]
