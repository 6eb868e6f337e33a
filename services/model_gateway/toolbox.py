"""The read-only tools a model may call before it answers: catalog search, saved places, a quote.

Each takes arguments validated against tools.READ_ONLY_TOOL_PARAMETERS and returns a JSON-able
result for the model's next turn. A refused call (unknown argument such as a price or a payer,
out-of-range value) is not run: the model gets `{"error": ...}` back, and the turn budget bounds
how often it may try again. Prices in a quote come from the catalog through the shared pricing
rules (yiju.common.pricing), the same ones planning prices the order with; nothing the model
says sets a price, a total or a payer.
"""

from __future__ import annotations

from typing import Any

from yiju.common.catalog import Catalog, User
from yiju.common.pricing import CatalogIndex, price_lines
from yiju.model_gateway import metrics
from yiju.model_gateway.tools import (
    QUOTE_PLAN,
    SAVED_PLACES,
    SEARCH_CATALOG,
    InvalidModelOutput,
    ParseRequest,
    validate_read_only_call,
)


def _quote_user(request: ParseRequest, catalog: Catalog) -> User:
    """The customer as pricing sees them: their saved places, no wallet or limits (a quote is no order)."""
    known = catalog.user(request.user_id) if request.user_id else None
    labels = {label: label for label in request.address_labels}
    if known is not None:
        labels = {**labels, **dict.fromkeys(known.addresses, "")}
    return User(request.user_id or "quote", "", request.locale, 0, 0, 0, addresses=labels)


class ReadOnlyTools:
    """Runs read-only tool calls for one gateway (catalog lookups only: no I/O, no state)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.index = CatalogIndex.build(catalog)

    def run(self, tool: str, arguments: Any, request: ParseRequest) -> dict[str, Any]:
        try:
            args = validate_read_only_call(tool, arguments)
        except InvalidModelOutput as exc:
            known = tool if tool in (SEARCH_CATALOG, SAVED_PLACES, QUOTE_PLAN) else "unknown"
            metrics.TOOL_CALLS.labels(known, "refused").inc()
            return {"error": str(exc)}
        metrics.TOOL_CALLS.labels(tool, "ok").inc()
        if tool == SEARCH_CATALOG:
            return self.search(args["query"], args["limit"])
        if tool == SAVED_PLACES:
            return {"labels": list(request.address_labels)}
        return self.quote(args["actions"], request)

    def search(self, query: str, limit: int = 5) -> dict[str, Any]:
        """Products whose name or alias matches the query: exact terms first, then containment."""
        needle = query.strip().lower()
        ranked: list[tuple[int, str]] = []
        for product in self.catalog.products.values():
            terms = [t.strip().lower() for t in product.terms if t.strip()]
            if needle in terms:
                rank = 0
            elif any(needle in t or t in needle for t in terms):
                rank = 1
            else:
                continue
            ranked.append((rank, product.sku))
        results = []
        for _, sku in sorted(ranked)[:limit]:
            product = self.catalog.products[sku]
            results.append(
                {"id": sku, "name": product.name, "name_zh": product.name_zh, "vertical": product.vertical}
            )
        return {"results": results}

    def quote(self, actions: list[Any], request: ParseRequest) -> dict[str, Any]:
        try:
            lines = price_lines(actions, _quote_user(request, self.catalog), self.catalog, self.index)
        except ValueError as exc:  # Unresolvable, OverLimit
            return {"error": str(exc)}
        return {
            "currency": self.catalog.currency,
            "lines": [
                {
                    "name": line.name,
                    "quantity": line.quantity,
                    "unit_price_fen": line.unit_price_fen,
                    "line_total_fen": line.line_total_fen,
                }
                for line in lines
            ],
            "total_fen": sum(line.line_total_fen for line in lines),
        }
