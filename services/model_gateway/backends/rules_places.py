"""Saved places ("to my office", "at home", "送到公司", "回家") and the role each one plays:
"to" (deliver to / ride to), "at" (where the user is), "from" (ride origin) or "" (just named)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from yiju.model_gateway.backends.rules_text import Span

STANDARD_LABELS = ("home", "office")

_EN = re.compile(
    r"(?=[abcfhmoptw])(?<![a-z])(?:(?P<role>back to|back|towards?|to|at|from)\s+)?(?P<det>(?:the|my|our)\s+)?"
    r"(?:(?P<home>home|place|house|apartment|flat)|(?P<office>office|workplace|company|work))(?![a-z])"
)
_NEEDS_DET = {"place", "house", "apartment", "flat", "company"}
_ZH = re.compile(
    r"(?=[送寄运拉回开到去往在从至我的家公办单])(?P<role>送到|送去|送回|送至|寄到|运到|拉到|回到|开到|到|去|回|往|在|从|至)?(?P<det>我们|我)?的?"
    r"(?:(?P<home>家里|家中|家)|(?P<office>公司|办公室|单位))"
)
_ROLES = {"at": "at", "在": "at", "from": "from", "从": "from"}


@dataclass(frozen=True, slots=True)
class Place:
    label: str
    role: str


def find_places(text: str, labels: tuple[str, ...]) -> list[Span]:
    """Places whose label is one of the user's saved labels; others are left out."""
    spans = [s for s in _standard(text) if s.value.label in labels]
    for label in labels:
        if label not in STANDARD_LABELS:
            spans.extend(_custom_spans(text, label))
    return sorted(spans, key=lambda s: s.start)


def _standard(text: str) -> list[Span]:
    spans: list[Span] = []
    for m in _EN.finditer(text):
        word = m.group("home") or m.group("office")
        if (word in _NEEDS_DET and not m.group("det")) or (word == "work" and not m.group("role")):
            continue
        spans.append(_span(m, "home" if m.group("home") else "office"))
    for m in _ZH.finditer(text):
        bare_home = m.group("home") == "家" and not (m.group("role") or m.group("det"))
        if not bare_home:
            spans.append(_span(m, "home" if m.group("home") else "office"))
    return spans


def _span(m: re.Match[str], label: str) -> Span:
    role = m.group("role") or ""
    return Span(m.start(), m.end(), "place", Place(label, _ROLES.get(role, "to" if role else "")), m.group())


@lru_cache(maxsize=256)
def _custom(label: str) -> re.Pattern[str]:
    return re.compile(
        rf"(?<![a-z])(?:(?P<role>back to|to|at|from)\s+)?(?:(?:the|my|our)\s+)?{re.escape(label)}(?![a-z])"
    )


def _custom_spans(text: str, label: str) -> list[Span]:
    return [_span(m, label) for m in _custom(label).finditer(text)]
