"""The CPU-default backend of the model gateway: catalog-driven rules, no model, no network.

It reads English and Chinese requests for the catalog's goods, rides, train tickets and hotels
and answers only with tool calls (order_item, book_ride, book_rail, book_hotel) that name
catalog SKUs, quantities, saved places and times: never prices, payers or anything a sentence
"instructs". When nothing fits, or a number, destination, route or city is missing or out of
range, it asks a short question in the sentence's language instead of guessing. So it does when
two readings of a quantity disagree ("3 lattes x2", "2 nights from friday to monday", "6 eggs" or
"4 bottles of water" of a product sold in packs of 12, where the question names the pack size): a
wrong quantity that completes is worse than a question.

Modules: rules_text (normalising, grammar words), rules_lexicon (catalog vocabulary),
rules_numerals, rules_times, rules_places, rules_stays (spans), rules_reading (clauses,
quantities, corrections), rules_quantity (packs and nights); this module turns the reading into
actions.
"""

from __future__ import annotations

from yiju.common.catalog import Catalog
from yiju.model_gateway.backends.rules_lexicon import HOTEL, ORDER, RAIL, RIDE, Lexicon, Route
from yiju.model_gateway.backends.rules_numerals import Qty
from yiju.model_gateway.backends.rules_places import STANDARD_LABELS
from yiju.model_gateway.backends.rules_quantity import Disagree, nights_of, units_of
from yiju.model_gateway.backends.rules_reading import Item, Reading, read
from yiju.model_gateway.backends.rules_text import PRICE_QUESTION, Span, has_cjk, normalize
from yiju.model_gateway.tools import (
    BOOK_HOTEL,
    BOOK_RAIL,
    BOOK_RIDE,
    MAX_ACTIONS,
    MAX_QUANTITY,
    ORDER_ITEM,
    Action,
    ParseRequest,
    ParseResult,
)

MAX_NIGHTS, MAX_RAIL_PASSENGERS, MAX_RIDE_PASSENGERS = 30, 9, 6
_ZH_LABELS = {"home": "家", "office": "公司"}  # saved-place labels as a Chinese question names them

QUESTIONS: dict[str, tuple[str, str]] = {
    "empty": ("What would you like to order or book?", "请问您想买点什么或订什么？"),
    "unknown": (
        "Sorry, I couldn't find that. What would you like to order or book?",
        "抱歉，没有找到相关的商品或服务。您想买什么或订什么？",
    ),
    "quantity": (
        "How many would you like? Please give a number from 1 to 99.",
        "请问要几份？数量请在1到99之间。",
    ),
    "pack": (
        '"{1}" is sold in packs of {0}. How many packs would you like?',
        "“{1}”是{0}{2}装的，请问要几份？",
    ),
    "destination": ("Where would you like to go?", "请问要去哪里？"),
    "route": (
        "Which train do you need: from which city to which city?",
        "请问要从哪个城市到哪个城市的车票？",
    ),
    "hotel": ("Which city should the hotel be in?", "请问要订哪个城市的酒店？"),
    "nights": ("How many nights? (1 to 30)", "请问住几晚？（1到30晚）"),
    "passengers": ("How many passengers?", "请问几位乘客？"),
    "price": (
        "I can order or book things for you, but not quote prices here. What would you like?",
        "我可以帮您下单或预订，但这里不能报价。您想要点什么？",
    ),
    "where": ("Where should it go: {0} or {1}?", "请问送到{0}还是{1}？"),
    "choice": ("Which one would you like: {0} or {1}?", "请问您要{0}还是{1}？"),
    "too_many": (
        "That's a lot at once. Could you split it into smaller requests?",
        "一次内容有点多，可以分开下单吗？",
    ),
}


class Unclear(Exception):
    """Raised while building actions when the sentence needs a question, not a guess."""

    def __init__(self, code: str, *details: str) -> None:
        super().__init__(code)
        self.code, self.details = code, details


class RulesBackend:
    name = "rules"

    def __init__(self, catalog: Catalog) -> None:
        self._lexicon = Lexicon(catalog)

    def parse_one(self, request: ParseRequest) -> ParseResult:
        text = normalize(request.text)
        zh = has_cjk(text) or (not text and request.locale.lower().startswith("zh"))
        if not any(ch.isalnum() for ch in text):
            return _question("empty", zh)
        if PRICE_QUESTION.search(text):
            return _question("price", zh)
        labels = tuple(label.lower() for label in request.address_labels) or STANDARD_LABELS
        reading = read(text, self._lexicon, labels)
        try:
            actions = self._actions(reading, zh)
        except Unclear as unclear:
            return _question(unclear.code, zh, *unclear.details)
        return ParseResult(actions=actions, confidence=_confidence(reading), backend=self.name)

    async def parse(self, requests: list[ParseRequest]) -> list[ParseResult]:
        return [self.parse_one(request) for request in requests]

    def _actions(self, reading: Reading, zh: bool) -> list[Action]:
        if not reading.items:
            raise Unclear("unknown")
        if reading.choice:
            raise Unclear("choice", *reading.choice)
        if len(reading.items) > MAX_ACTIONS:
            raise Unclear("too_many")
        orders = [i for i in reading.items if i.kind == ORDER]
        actions, last_city = [], ""
        for item in reading.items:
            if item.kind == ORDER:
                actions.append(self._order(item, orders))
            elif item.kind == RIDE:
                actions.append(_ride(item))
            elif item.kind == RAIL:
                route = self._route(item)
                last_city = route.destination
                actions.append(self._rail(item, route, zh))
            elif item.kind == HOTEL:
                actions.append(self._hotel(item, last_city))
        return actions

    def _order(self, item: Item, orders: list[Item]) -> Action:
        product = self._lexicon.products[item.sku]
        try:
            quantity = units_of(item, product, self._lexicon.is_singular_of_plural(item.sku, item.query))
        except Disagree as disagree:
            if disagree.pack:  # "6 eggs", "4 bottles of water": ask how many packs
                raise Unclear("pack", str(disagree.pack), item.query, product.piece or "个") from None
            raise Unclear("quantity") from None
        places = [s.value for s in _shared(item, orders, "places") if s.value.role != "from"]
        labels = list(dict.fromkeys(p.label for p in places))
        if len(labels) > 1:
            raise Unclear("where", *labels[:2])
        return Action(
            tool=ORDER_ITEM,
            product_query=item.query,
            sku=item.sku,
            quantity=_bounded(quantity, MAX_QUANTITY, "quantity"),
            deliver_to=places[-1].label if places else "",
            time=_time(_shared(item, orders, "times")),
        )

    def _route(self, item: Item) -> Route:
        """The catalog route a train names, by its cities ("from X to Y", "X到Y") or by the catalog
        term itself ("京沪高铁"). A route the catalog does not sell is asked about, not guessed."""
        origin, destination = _endpoints(item)
        routes = [
            r for r in self._lexicon.routes if origin in ("", r.origin) and destination in ("", r.destination)
        ]
        named = [r for r in routes if r.sku == item.sku]
        if named and (destination or not origin):
            return named[0]
        if destination and len(routes) == 1:
            return routes[0]
        raise Unclear("route")

    def _rail(self, item: Item, route: Route, zh: bool) -> Action:
        passengers = _bounded(_quantity(item.unit_qty or item.count), MAX_RAIL_PASSENGERS, "passengers")
        return Action(
            tool=BOOK_RAIL,
            sku=route.sku,
            quantity=passengers,
            passengers=passengers,
            origin=self._lexicon.city_name(route.origin, zh),
            destination=self._lexicon.city_name(route.destination, zh),
            time=_time(item.times),
        )

    def _hotel(self, item: Item, last_city: str) -> Action:
        sku = item.sku
        if not sku:
            geos = [g.value[0] for g in item.geos]
            if geos and not geos[-1].hotel_sku:
                raise Unclear("hotel")
            sku = geos[-1].hotel_sku if geos else self._lexicon.hotel_in(last_city)
        if not sku:
            raise Unclear("hotel")
        try:
            nights = _bounded(nights_of(item.stays), MAX_NIGHTS, "nights")  # "2 rooms" are not nights
        except Disagree:
            raise Unclear("nights") from None
        return Action(
            tool=BOOK_HOTEL,
            product_query=item.query,
            sku=sku,
            quantity=nights,
            nights=nights,
            time=_time(item.times),
        )


def _endpoints(item: Item) -> tuple[str, str]:
    """(origin, destination) city ids: marked by from/to (从/到/去), else in the order said."""
    cities = [(g.start, g.value[0].city, g.value[1]) for g in item.geos if g.value[0].city]
    origin = next((c for c in cities if c[2] == "from"), None)
    destination = next((c for c in reversed(cities) if c[2] == "to"), None)
    unmarked = [c for c in cities if not c[2]]
    if origin is None and destination is None:
        origin, destination = (unmarked[0], unmarked[1]) if len(unmarked) > 1 else (None, None)
        destination = destination or (unmarked[0] if unmarked else None)
    elif origin is None and destination is not None:
        origin = next((c for c in unmarked if c[0] < destination[0]), None)
    elif destination is None and origin is not None:
        destination = next((c for c in unmarked if c[0] > origin[0]), None)
    return (origin[1] if origin else "", destination[1] if destination else "")


def _ride(item: Item) -> Action:
    places = [s.value for s in item.places]
    destination = next((p for p in reversed(places) if p.role in ("to", "")), None)
    origin = next((p for p in reversed(places) if p.role in ("from", "at") and p != destination), None)
    if destination is None:
        raise Unclear("destination")
    passengers = _bounded(_quantity(item.unit_qty), MAX_RIDE_PASSENGERS, "passengers") if item.unit_qty else 0
    return Action(
        tool=BOOK_RIDE,
        product_query=item.query,
        sku=item.sku,
        quantity=1,
        origin=origin.label if origin else "",
        destination=destination.label,
        time=_time(item.times),
        passengers=passengers,
    )


def _quantity(qty: Qty | None) -> int | None:
    """The number said (1 when none); None when vague ("a few")."""
    if qty is None:
        return 1
    return qty.value


def _bounded(value: int | None, high: int, code: str) -> int:
    if value is None:
        raise Unclear("quantity")
    if not 1 <= value <= high:
        raise Unclear("quantity" if value < 1 else code)
    return value


def _shared(item: Item, orders: list[Item], attr: str) -> list[Span]:
    """An order item's own places/times, else those of the nearest order item that has some
    (following first: "a latte and a tea to my office")."""
    own: list[Span] = getattr(item, attr)
    if own:
        return own
    following = [o for o in orders if o.start > item.start and getattr(o, attr)]
    preceding = [o for o in orders if o.start < item.start and getattr(o, attr)]
    source = following[0] if following else preceding[-1] if preceding else None
    return getattr(source, attr) if source else []


def _time(spans: list[Span]) -> str:
    return " ".join(dict.fromkeys(str(s.value) for s in sorted(spans, key=lambda s: s.start)))


def _confidence(reading: Reading) -> float:
    penalties = {"single-char": 0.1, "corrected": 0.05, "loose-number": 0.25}
    return round(max(0.5, 0.95 - sum(penalties.get(note, 0.0) for note in reading.notes)), 2)


def _question(code: str, zh: bool, *details: str) -> ParseResult:
    if zh:
        details = tuple(_ZH_LABELS.get(d, d) for d in details)
    question = QUESTIONS[code][1 if zh else 0].format(*details)
    confidence = 0.1 if code in ("empty", "unknown") else 0.3
    return ParseResult(actions=[], confidence=confidence, backend=RulesBackend.name, clarification=question)
