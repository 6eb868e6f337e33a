"""Catalog-derived vocabulary of the rules backend.

Every product word the backend knows is built here, once, from the catalog: names, Chinese
names and aliases (plus light variants: singular/plural, without the parenthesis, without
spaces), the cities of the rail routes ("Beijing to Shanghai", "北京到上海高铁") and the cities
or landmarks of the hotels ("hotel in hangzhou", "西湖酒店").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Generic, TypeVar

from yiju.common.catalog import Catalog, Product
from yiju.model_gateway.backends.rules_text import Span, is_cjk, is_word_char, longest_first, normalize

V = TypeVar("V")

ORDER, RIDE, RAIL, HOTEL = "order", "ride", "rail", "hotel"

_PAREN = re.compile(r"\s*\([^)]*\)")
# Items in one unit, from the name: "(12)", "(pack of 20)", "(15 pcs)", "12x550ml".
_PACK = re.compile(r"\((?:pack of )?(\d+)(?: ?pcs)?\)|(?<![0-9])(\d+) ?[x×] ?\d")
_ZH_PIECE = re.compile(r"(\d+)\s*([\u4e00-\u9fff])")  # "12瓶装", "（12枚）": the measure of one piece
_EN_ROUTE = re.compile(r"([a-z]+) to ([a-z]+)")
_ZH_ROUTE = re.compile(r"^(.+?)到(.+?)的?(?:高铁|火车|动车)$")
_EN_HOTEL = re.compile(r"^(?:hotel in ([a-z ]+)|([a-z ]+) hotel)$")
_ZH_HOTEL = re.compile(r"^(.+?)的?酒店$")
_CJK_INFIXES = ("个", "辆", "一个", "一辆")
# A one-character Chinese term ("水", "米") counts only between such neighbours, so that
# "水果" or "米线" do not become water or rice.
_SOLO_BEFORE = set("来要买订喝拿点送带给份些瓶罐袋箱桶杯盒包斤提一二两三四五六七八九十俩几")
_SOLO_AFTER = set("和跟与及送到给吧了啊呀呢吗就还再也过明今后下上晚中早一二两三四五六七八九十俩")


@dataclass(frozen=True, slots=True)
class ProductInfo:
    sku: str
    kind: str  # order | ride | rail | hotel
    pack: int  # items in one unit, from the name ("eggs (12)" -> 12); 0 when not stated
    piece: str = ""  # the Chinese measure word of one of those items ("矿泉水12瓶装" -> 瓶)


@dataclass(frozen=True, slots=True)
class Geo:
    """A place name the catalog knows: a rail city (city set) or a hotel landmark (city empty)."""

    city: str
    en: str
    zh: str
    hotel_sku: str


@dataclass(frozen=True, slots=True)
class Route:
    sku: str
    origin: str
    destination: str


def product_kind(product: Product) -> str:
    if product.vertical == "ride":
        return RIDE
    if product.vertical == "travel":
        return HOTEL if product.sku.startswith("hotel-") else RAIL
    return ORDER


def term_variants(term: str) -> set[str]:
    """The ways a sentence may spell one catalog term."""
    base = normalize(term)
    stripped = _PAREN.sub("", base).strip()
    out = {base, stripped, stripped.split(",")[0].strip()}
    for text in list(out):
        if text.isascii():
            if " " in text:
                out.add(text.replace(" ", ""))
            if text.endswith("s") and not text.endswith("ss") and len(text) > 3:
                out.add(text[:-1])
        elif len(text) == 2 and all(is_cjk(ch) for ch in text):
            out.update(text[0] + infix + text[1] for infix in _CJK_INFIXES)
    return {text for text in out if text}


def _word_end(text: str, end: int) -> int:
    """End of a Latin-script match allowing a plural 's'/'es'; -1 when no word boundary follows."""
    for suffix in ("", "s", "es"):
        stop = end + len(suffix)
        if text[end:stop] == suffix and (stop == len(text) or not is_word_char(text[stop])):
            return stop
    return -1


def _solo(text: str, i: int) -> bool:
    before = text[i - 1] if i else ""
    after = text[i + 1] if i + 1 < len(text) else ""
    return (not is_cjk(before) or before in _SOLO_BEFORE) and (not is_cjk(after) or after in _SOLO_AFTER)


class PhraseIndex(Generic[V]):
    """Finds phrases in a sentence: on word boundaries for Latin script, as substrings for Chinese."""

    def __init__(self, phrases: dict[str, V]) -> None:
        self._phrases = phrases
        lengths: dict[str, set[int]] = {}  # by the first two characters; one-character phrases by one
        for phrase in phrases:
            lengths.setdefault(phrase[:2], set()).add(len(phrase))
        self._lengths = {key: sorted(ls, reverse=True) for key, ls in lengths.items()}
        firsts = {key[0] for key in lengths}
        latin = "".join(sorted(ch for ch in firsts if is_word_char(ch)))
        other = "".join(sorted(re.escape(ch) for ch in firsts if not is_word_char(ch)))
        # A Latin word starts after a non-word character, but not inside an id such as "m-pizza".
        starts = [f"(?<![a-z0-9])(?<![a-z0-9]-)[{latin}]" if latin else "", f"[{other}]" if other else ""]
        self._starts = re.compile("|".join(p for p in starts if p) or "(?!)")

    def get(self, phrase: str) -> V | None:
        return self._phrases.get(phrase)

    def scan(self, text: str, kind: str) -> list[Span]:
        found: list[Span] = []
        for start in self._starts.finditer(text):
            i = start.start()
            for length in [*self._lengths.get(text[i : i + 2], ()), *self._lengths.get(text[i], ())]:
                phrase = text[i : i + length]
                value = self._phrases.get(phrase)
                if value is None:
                    continue
                end = i + len(phrase)
                if is_word_char(phrase[-1]):
                    end = _word_end(text, end)
                    if end < 0:
                        continue
                elif len(phrase) == 1 and not _solo(text, i):
                    continue
                found.append(Span(i, end, kind, value, text[i:end]))
                break
        return longest_first(found)


class Lexicon:
    """Product terms, rail routes and hotel places, all read from one catalog."""

    def __init__(self, catalog: Catalog) -> None:
        products = list(catalog.products.values())
        self.products = {p.sku: ProductInfo(p.sku, product_kind(p), *_pack(p)) for p in products}
        self.cities: dict[str, tuple[str, str]] = {}  # city id -> (English, Chinese)
        self.routes = [self._route(p) for p in products if self.products[p.sku].kind == RAIL]
        self.routes = [r for r in self.routes if r.origin and r.destination]
        self._hotel_of_city: dict[str, str] = {}
        self._name_words = {p.sku: set(_PAREN.sub("", normalize(p.name)).split()) for p in products}
        self._terms = PhraseIndex(_terms(products))
        self._geos = PhraseIndex(
            self._geo_phrases([p for p in products if self.products[p.sku].kind == HOTEL])
        )

    def find_products(self, text: str) -> list[Span]:
        return self._terms.scan(text, "product")

    def is_plural_of_one(self, sku: str, text: str) -> bool:
        """ "lattes", "pizzas": a plural of a product sold one by one. "apples" or "dumplings" is
        not: the catalog's own name is plural (a bag of apples, a plate of dumplings)."""
        word = text.split()[-1] if text.isascii() and text.strip() else ""
        return word.endswith("s") and word not in self._name_words[sku]

    def is_singular_of_plural(self, sku: str, text: str) -> bool:
        """ "egg", "red envelope": the singular of a plural catalog term ("eggs"), so "an egg" is
        one piece; "jiaozi" or "free-range eggs (12)" is not."""
        return text.isascii() and any(self._terms.get(text + ending) == sku for ending in ("s", "es"))

    def find_geos(self, text: str) -> list[Span]:
        return self._geos.scan(text, "geo")

    def hotel_in(self, city: str) -> str:
        """The hotel SKU in a city ("" when the catalog has none there)."""
        return self._hotel_of_city.get(city, "")

    def city_name(self, city: str, zh: bool) -> str:
        en, zh_name = self.cities.get(city, (city.title(), ""))
        return (zh_name or en) if zh else en

    def _route(self, product: Product) -> Route:
        en = _EN_ROUTE.search(normalize(product.name))
        if en is None:
            return Route(product.sku, "", "")
        origin, destination = en.groups()
        self.cities.setdefault(origin, (origin.title(), ""))
        self.cities.setdefault(destination, (destination.title(), ""))
        for term in product.terms:
            zh = _ZH_ROUTE.match(normalize(term))
            if zh:
                self.cities[origin] = (origin.title(), zh.group(1))
                self.cities[destination] = (destination.title(), zh.group(2))
        return Route(product.sku, origin, destination)

    def _geo_phrases(self, hotels: list[Product]) -> dict[str, Geo]:
        hotel_of_city = self._hotel_of_city
        landmarks: dict[str, str] = {}
        zh_cities = {zh: city for city, (_, zh) in self.cities.items() if zh}
        for hotel in hotels:
            for term in map(normalize, hotel.terms):
                en, zh = _EN_HOTEL.match(term), _ZH_HOTEL.match(term)
                if en:
                    city = en.group(1) or en.group(2)
                    self.cities.setdefault(city, (city.title(), ""))
                    hotel_of_city.setdefault(city, hotel.sku)
                elif zh and zh.group(1) in zh_cities:
                    hotel_of_city.setdefault(zh_cities[zh.group(1)], hotel.sku)
                elif zh:
                    landmarks.setdefault(zh.group(1), hotel.sku)
        phrases: dict[str, Geo] = {}
        for city, (en, zh) in self.cities.items():
            geo = Geo(city, en, zh, hotel_of_city.get(city, ""))
            phrases[city] = geo
            if zh:
                phrases[zh] = geo
        landmarks.update(_name_landmarks(hotels, set(self.cities)))
        for name, sku in landmarks.items():
            phrases.setdefault(name, Geo("", "", name, sku))
        return phrases


def _name_landmarks(hotels: list[Product], cities: set[str]) -> dict[str, str]:
    """Words (and word pairs) of a hotel's English name that no other hotel shares: "bund",
    "west lake"."""
    words = {h.sku: normalize(h.name).split(",")[0].split() for h in hotels}
    counts: dict[str, int] = {}
    for name in words.values():
        for word in set(name):
            counts[word] = counts.get(word, 0) + 1
    found: dict[str, str] = {}
    for sku, name in words.items():
        unique = [w if counts[w] == 1 and len(w) > 3 and w not in cities else "" for w in name]
        found.update({w: sku for w in unique if w})
        found.update({f"{a} {b}": sku for a, b in pairwise(unique) if a and b})
    return found


def _pack(product: Product) -> tuple[int, str]:
    """(items in one unit, the Chinese measure word of one item) from the catalog names."""
    match = _PACK.search(normalize(product.name))
    if match is None:
        return 0, ""
    pack = int(match.group(1) or match.group(2))
    pieces = [m.group(2) for m in _ZH_PIECE.finditer(normalize(product.name_zh)) if int(m.group(1)) == pack]
    return pack, pieces[0] if pieces else ""


def _terms(products: list[Product]) -> dict[str, str]:
    """Every spelling -> sku. On a clash an exact catalog term beats a derived variant, and a
    name beats an alias."""
    best: dict[str, tuple[int, str]] = {}
    for product in products:
        for rank, term in enumerate(product.terms):
            exact = normalize(term)
            for variant in term_variants(term):
                priority = (0 if variant == exact else 2) + (0 if rank < 2 else 1)
                if variant not in best or priority < best[variant][0]:
                    best[variant] = (priority, product.sku)
    return {variant: sku for variant, (_, sku) in best.items()}
