"""Turns the model's actions into priced plan lines. Every price comes from the catalog.

The rules live in yiju.common.pricing (the model gateway quotes with the same ones); planning keeps
importing them from here.
"""

from __future__ import annotations

from yiju.common.pricing import (
    MAX_LINES,
    CatalogIndex,
    OverLimit,
    PricedAction,
    Unresolvable,
    price_lines,
    resolve_product,
)

__all__ = [
    "MAX_LINES",
    "CatalogIndex",
    "OverLimit",
    "PricedAction",
    "Unresolvable",
    "price_lines",
    "resolve_product",
]
