"""Time phrases, kept as said and lightly normalised: "at 7 pm" -> "7pm", "tomorrow morning",
"19:00", "明天", "晚上7点", "下午三点"."""

from __future__ import annotations

import re

from yiju.model_gateway.backends.rules_text import Span, has_cjk, longest_first

_CLOCK_WORDS = "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
_EN_TIME = re.compile(
    r"(?=[0-9abefimnostw])(?<![a-z0-9])(?:(?:at|by|around|about|before|after|for|on)\s+)?(?P<t>"
    r"\d{1,2}(?::\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.)"
    rf"|(?:{_CLOCK_WORDS})\s*(?:am|pm|a\.m\.|p\.m\.|o'clock)"
    r"|\d{1,2}\s*o'clock|\d{1,2}:\d{2}|noon|midnight|tonight|today|tomorrow"
    r"|this (?:morning|afternoon|evening|weekend)|(?:in the )?(?:morning|afternoon|evening)"
    r"|(?:next |this )?(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
    r"|in (?:\d+|a|an|half an|one|two|three|four|five|ten|twenty|thirty) (?:minutes?|mins?|hours?)"
    r"|(?<=at )\d{1,2}(?=\s*(?:$|[,.!?;]|tonight|tomorrow|today|this|in the|and|then|please)))"
    r"(?![a-z0-9])"
)

_ZH_DAY = (
    r"(?:大后天|后天|明天|今天|今晚|明晚|今早|明早|今日|明日"
    r"|(?:这|本|下)?(?:周|星期|礼拜)[一二三四五六日天])"
)
_ZH_PERIOD = r"(?:(?<!个)(?:早上|上午|中午|下午|傍晚|晚上|夜里|凌晨|早晨))"
_ZH_NUM = r"(?:\d{1,2}|[零一二两三四五六七八九十]{1,3})"
_ZH_CLOCK = rf"(?:{_ZH_NUM}[点點](?:半|一刻|三刻|{_ZH_NUM}分?)?钟?|\d{{1,2}}:\d{{2}})"
_ZH_LATER = r"(?:(?:\d+|[一二两三四五六七八九十半]+)个?(?:小时|分钟|天)(?:后|以后|之后))"
_ZH_TIME = re.compile(
    r"(?=[0-9零一二两三四五六七八九十半今明后大这本下周星礼早上中傍晚夜凌])"
    rf"(?:{_ZH_LATER}|(?P<day>{_ZH_DAY})?\s*(?P<period>{_ZH_PERIOD})?\s*(?P<clock>{_ZH_CLOCK})?)"
)
_AMBIGUOUS_ONE = re.compile(r"一[点點]$")  # "来一点" is "a little", not one o'clock


def find_times(text: str) -> list[Span]:
    spans = [
        Span(m.start(), m.end(), "time", _tidy_en(m.group("t")), m.group()) for m in _EN_TIME.finditer(text)
    ]
    for m in _ZH_TIME.finditer(text) if has_cjk(text) else ():
        phrase = m.group().strip()
        if not phrase:
            continue
        if (
            m.group("clock")
            and _AMBIGUOUS_ONE.search(m.group("clock"))
            and not (m.group("day") or m.group("period"))
        ):
            continue
        start = m.start() + (len(m.group()) - len(m.group().lstrip()))
        spans.append(Span(start, start + len(phrase), "time", phrase.replace(" ", ""), phrase))
    return longest_first(spans)


def _tidy_en(phrase: str) -> str:
    phrase = phrase.replace("a.m.", "am").replace("p.m.", "pm")
    phrase = re.sub(r"\s+(am|pm)$", r"\1", phrase)
    return phrase.removeprefix("in the ")
