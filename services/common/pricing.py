"""The pricing rules two services share: actions -> priced plan lines, every price from the catalog.

Planning prices an order with them; the model gateway quotes a candidate plan with the same rules
(its read-only `quote_plan` tool), so a quote and the order it becomes never disagree. Nothing here
takes a price, a total or a payer from the caller: an action names a product (by catalog SKU or by a
catalog name or alias), a quantity, saved-place labels and a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from yiju.common.catalog import Catalog, Product, User
from yiju.gen.events.v1 import order_events_pb2 as ev

MAX_LINES = 10
MAX_QUANTITY = 99
# Which catalog verticals each action tool may buy (the tool names of yiju.model_gateway.tools).
TOOL_ACCEPTS: dict[str, tuple[str, ...]] = {
    "order_item": ("food", "grocery", "retail"),
    "book_ride": ("ride",),
    "book_rail": ("travel",),
    "book_hotel": ("travel",),
}


class PricedAction(Protocol):
    """What pricing reads of an action (yiju.model_gateway.tools.Action has these fields)."""

    tool: str
    sku: str
    product_query: str
    quantity: int
    deliver_to: str
    time: str
    origin: str
    destination: str


class Unresolvable(ValueError):
    """An action names something the catalog does not have (ask the user)."""


class OverLimit(ValueError):
    """An action asks for more than the platform allows (reject)."""


# A rail product's route, as the catalog names it: "high-speed rail Beijing to Shanghai, second class",
# with aliases such as "北京到上海高铁" for the Chinese city names.
_EN_ROUTE = re.compile(r"([a-z]+) to ([a-z]+)")
_ZH_ROUTE = re.compile(r"^(.+?)到(.+?)的?(?:高铁|火车|动车)$")
_PLACE_SUFFIXES = (" railway station", " station", " city", "火车站", "站", "市")


@dataclass(frozen=True)
class RailRoute:
    """A train the catalog sells: its SKU and the names (lower-cased) of its two cities."""

    sku: str
    origin: frozenset[str]
    destination: frozenset[str]


def _city(name: str) -> str:
    city = " ".join(name.strip().lower().split())
    for suffix in _PLACE_SUFFIXES:
        if city.endswith(suffix) and len(city) > len(suffix):
            return city[: -len(suffix)].strip()
    return city


def _rail_route(product: Product) -> RailRoute | None:
    en = _EN_ROUTE.search(product.name.lower())
    if product.vertical not in TOOL_ACCEPTS["book_rail"] or en is None:
        return None
    origin, destination = {en.group(1)}, {en.group(2)}
    for term in product.terms:
        zh = _ZH_ROUTE.match(term.strip())
        if zh:
            origin.add(zh.group(1))
            destination.add(zh.group(2))
    return RailRoute(product.sku, frozenset(origin), frozenset(destination))


@dataclass(frozen=True)
class CatalogIndex:
    """Exact lookup of catalog names and aliases (lower-cased), and of trains by route."""

    terms: dict[str, str]
    routes: tuple[RailRoute, ...] = ()

    @classmethod
    def build(cls, catalog: Catalog) -> CatalogIndex:
        terms: dict[str, str] = {}
        routes = []
        for product in catalog.products.values():
            for term in product.terms:
                terms.setdefault(term.strip().lower(), product.sku)
            route = _rail_route(product)
            if route is not None:
                routes.append(route)
        return cls(terms, tuple(routes))

    def train(self, origin: str, destination: str) -> str:
        """The SKU of the one train from `origin` (may be empty) to `destination`; "" when the catalog
        has none or more than one. The same rule as the rules backend's: a route named by its cities,
        the origin optional when only one train goes to the destination."""
        to, start = _city(destination), _city(origin)
        if not to:
            return ""
        found = [r.sku for r in self.routes if to in r.destination and (not start or start in r.origin)]
        return found[0] if len(found) == 1 else ""


def resolve_product(action: PricedAction, catalog: Catalog, index: CatalogIndex) -> Product:
    product = catalog.product(action.sku) if action.sku else None
    if product is None and action.product_query:
        sku = index.terms.get(action.product_query.strip().lower())
        product = catalog.product(sku) if sku else None
    if product is None and action.tool == "book_rail" and not action.sku and not action.product_query:
        # A model books a train by route (book_rail has no product argument): the catalog's train
        # between those cities, at the catalog's price.
        sku = index.train(action.origin, action.destination)
        product = catalog.product(sku) if sku else None
    if product is None:
        what = action.product_query or action.sku or action.tool
        raise Unresolvable(f"'{what}' is not in the catalog")
    if product.vertical not in TOOL_ACCEPTS.get(action.tool, ()):
        raise Unresolvable(f"'{product.name}' cannot be ordered with {action.tool}")
    return product


def _place(label: str, user: User) -> str:
    """Keeps only labels from the user's own address book (the label, not the address: no PII in events)."""
    return label if label in user.addresses else ""


def price_lines(
    actions: list[PricedAction], user: User, catalog: Catalog, index: CatalogIndex
) -> list[ev.PlanLine]:
    if len(actions) > MAX_LINES:
        raise OverLimit(f"at most {MAX_LINES} lines per order")
    lines = []
    for action in actions:
        if not 1 <= action.quantity <= MAX_QUANTITY:
            raise OverLimit(f"quantity {action.quantity} is outside 1..{MAX_QUANTITY}")
        product = resolve_product(action, catalog, index)
        merchant = catalog.merchants[product.merchant_id]
        lines.append(
            ev.PlanLine(
                sku=product.sku,
                name=product.name,
                vertical=product.vertical,
                merchant_id=merchant.id,
                quantity=action.quantity,
                unit_price_fen=product.price_fen,
                line_total_fen=product.price_fen * action.quantity,
                deliver_to=_place(action.deliver_to, user),
                time=action.time[:64],
                origin=_place(action.origin, user) or action.origin[:64],
                destination=_place(action.destination, user) or action.destination[:64],
            )
        )
    return lines
