"""Text helpers and the small grammar of the rules backend.

Only language structure lives here: clause separators, self-corrections, "or", negations and
the words that announce a train or a hotel. Product words never do: they come from the catalog
(see rules_lexicon).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MASK = "\x00"

_SPACES = re.compile(r"\s+")
_INNER_HYPHEN = re.compile(r"(?<=[a-z]{2})[-‐‑–](?=[a-z])")  # "usb-c", "free-range"; not "m-pizza"
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_INVISIBLE = "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\ufeff\u00ad"
_QUOTES = str.maketrans({"’": "'", "‘": "'", "`": "'", **dict.fromkeys(_INVISIBLE)})


@dataclass(slots=True)
class Span:
    """Something recognised in the normalised sentence: [start, end) plus what it means."""

    start: int
    end: int
    kind: str
    value: Any = None
    text: str = ""


def normalize(text: str) -> str:
    """NFKC (full-width to half-width), lower case, hyphens between letters as spaces, one space."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = text.lower().translate(_QUOTES).replace(MASK, " ")
    text = _INNER_HYPHEN.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


def is_word_char(ch: str) -> bool:
    """Latin letters and digits: the characters an English word boundary separates."""
    return ch.isascii() and ch.isalnum()


def mask(text: str, spans: Iterable[Span]) -> str:
    """Blanks out recognised spans (same length), so later patterns cannot match inside them."""
    chars = list(text)
    for span in spans:
        chars[span.start : span.end] = MASK * (span.end - span.start)
    return "".join(chars)


def longest_first(spans: list[Span]) -> list[Span]:
    """Keeps the longest of overlapping spans (then the leftmost); returns them in text order."""
    chosen: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start - s.end, s.start)):
        if all(span.end <= c.start or span.start >= c.end for c in chosen):
            chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)


def find(pattern: re.Pattern[str], text: str, kind: str) -> list[Span]:
    return [
        Span(m.start(), m.end(), kind, m.lastgroup, m.group()) for m in pattern.finditer(text) if m.group()
    ]


# Each pattern starts with a lookahead on its possible first characters: a cheap early exit.
SEPARATORS = re.compile(
    r"(?=[,;:!?。！？；、\n.&atp还然另并以顺同外加和跟与再])(?:[,;:!?。！？；、\n]|\.(?![0-9])|&"
    r"|(?<![a-z])(?:and then|and also|and|then|also|plus|as well as|after that|along with)(?![a-z])"
    r"|还有|然后|另外|并且|以及|顺便|同时|外加|加上|和|跟|与|再)"
)

_NUMBER_AHEAD = r"(?:a|an|one|two|three|four|five|six|seven|eight|nine|ten|make|\d)"
_ZH_NUMBER_AHEAD = r"[0-9一二两三四五六七八九十俩仨]"
# "make the lattes two" / "change the slushes to one" name what they change; "oh wait," starts a
# correction only before punctuation ("wait for me" does not).
CORRECTIONS = re.compile(
    r"(?=[scnfiamow不算取说我改换应更哦噢呃额啊还\s])"
    r"(?:(?<![a-z])(?P<cancel>scratch that|cancel that|never ?mind|forget (?:it|that))(?![a-z])"
    r"|(?<![a-z])(?P<fix>no wait|no sorry|sorry|i mean|i meant|actually|make (?:that|it|the)"
    rf"|change (?:that|it) to|change the|oops|correction|(?:oh )?wait(?=\s*[,.!;])"
    rf"|no(?=\s*[,.!;]|\s+{_NUMBER_AHEAD}(?![a-z])))(?![a-z])"
    r"|(?P<zcancel>算了|不要了|取消)"
    r"|(?P<zfix>不对|说错了|我是说|我的意思是|改成|换成|改为|换为|应该是|更正|哦不|噢不|呃不|额不|啊不|不不"
    rf"|(?<=,)\s*(?:不是|不)(?=\s*,)|(?<=,)\s*还是(?=\s*(?:来|要|换|改|给|{_ZH_NUMBER_AHEAD}))))"
)

THERE = re.compile(r"(?=[t那])(?:(?<![a-z])there(?![a-z])|那里|那边|那儿)")
ALTERNATIVES = re.compile(r"(?=[o或还])(?:(?<![a-z])or(?![a-z])|或者|或是|还是|或)")

RAIL_CUES = re.compile(
    r"(?=[hbtr高动火车二一])"
    r"(?:(?<![a-z])(?:high speed rail|high speed train|bullet train|trains?|rail|railway|tickets?)(?![a-z])"
    r"|高铁票?|动车票?|火车票?|车票|二等座|一等座)"
)
HOTEL_CUES = re.compile(
    r"(?=[hrs酒宾旅民入订房住])"
    r"(?:(?<![a-z])(?:hotels?|rooms?(?= (?:in|at|for|near))|stay(?:ing)?(?= (?:in|at|for)))(?![a-z])"
    r"|酒店|宾馆|旅馆|民宿|入住|订房|房间|住(?=[0-9一二两三四五六七八九十几]|在|晚|酒店|宾馆))"
)

# A product right after a negation, a possessive or a word that makes it another product is
# never ordered ("no milk", "不要奶茶", "a charger for my phone", "oat milk"); right after a
# modifier it only describes the product before it ("a latte with milk").
NEGATION_BEFORE = re.compile(
    r"(?:(?<![a-z])(?:without|no|not|don't want|dont want|my|your|his|her|our|their|oat|soy|almond|skim"
    r"|(?:price|prices|cost) of(?: the| a| an)?)"
    r"|不要|不加|不用|不需要|免|我的|你的)\s*$"
)
# A product negated in a self-correction is taken off the order: "..., sorry, no apples".
REMOVAL_BEFORE = re.compile(
    r"(?:(?<![a-z])(?:without|no|not|don't want|dont want)(?: the| any| more)?|不要|不用|不需要)\s*$"
)
MODIFIER_BEFORE = re.compile(r"(?:(?<![a-z])(?:with|extra)|多)\s*$")
# Asking about prices is not ordering: "how much is a latte?", "拿铁多少钱".
PRICE_QUESTION = re.compile(
    r"(?<![a-z])(?:how much|what(?:'s| is) the (?:price|cost))(?![a-z])|多少钱|几块钱|什么价"
)
