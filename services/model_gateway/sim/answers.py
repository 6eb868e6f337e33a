"""What the simulated model says: the rules parser's reading of the sentence, as model tool calls.

Per request, from the conversation so far:
- the tools offered include `search_catalog` and nothing was looked up yet: search the catalog for
  each product named (for `search_rate` of the sentences);
- `quote_plan` offered, searched, nothing quoted yet: quote the plan (for `quote_rate`);
- otherwise: answer with the action tool calls, products named by their catalog names (those the
  search returned, when it ran). Never a SKU, a price or a payer: the schema has none.
A sentence the rules parser cannot read gets no tool call (as the system prompt asks of a model).
Which sentences search or quote is a stable draw from the sentence and the seed, so a retried or
repeated sentence behaves the same.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from yiju.common.catalog import Catalog
from yiju.model_gateway.backends.rules import RulesBackend
from yiju.model_gateway.tools import (
    BOOK_HOTEL,
    BOOK_RAIL,
    BOOK_RIDE,
    ORDER_ITEM,
    QUOTE_PLAN,
    SEARCH_CATALOG,
    Action,
    ParseRequest,
    ParseResult,
)

Message = dict[str, Any]
READINGS_KEPT = 8192  # distinct sentences whose reading is kept (cleared when full)


@dataclass(frozen=True, slots=True)
class Conversation:
    """What the simulated model reads of a request."""

    request: ParseRequest
    offered: frozenset[str]
    searched: dict[str, list[dict[str, Any]]]  # query -> results, from earlier search_catalog turns
    quoted: bool
    turn: int  # 1 for the first request of a sentence

    @classmethod
    def of(cls, body: dict[str, Any]) -> Conversation:
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        offered = frozenset(
            t.get("function", {}).get("name", "") for t in body.get("tools") or [] if isinstance(t, dict)
        )
        request = ParseRequest("")
        for message in messages:
            if message.get("role") == "user":
                request = _request_of(str(message.get("content") or ""))
                break
        calls: dict[str, tuple[str, dict[str, Any]]] = {}
        for message in messages:
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                try:
                    args = json.loads(function.get("arguments") or "{}")
                except (TypeError, ValueError):
                    args = {}
                calls[str(call.get("id"))] = (
                    str(function.get("name")),
                    args if isinstance(args, dict) else {},
                )
        searched: dict[str, list[dict[str, Any]]] = {}
        quoted = False
        for message in messages:
            if message.get("role") != "tool":
                continue
            name, args = calls.get(str(message.get("tool_call_id")), (str(message.get("name")), {}))
            if name == QUOTE_PLAN:
                quoted = True
            elif name == SEARCH_CATALOG:
                try:
                    results = json.loads(message.get("content") or "{}").get("results") or []
                except (AttributeError, TypeError, ValueError):
                    results = []
                searched[str(args.get("query", ""))] = [r for r in results if isinstance(r, dict)]
        turn = 1 + sum(1 for m in messages if m.get("role") == "assistant")
        return cls(request, offered, searched, quoted, turn)


def _request_of(content: str) -> ParseRequest:
    """The gateway sends the sentence as JSON data: {"sentence", "locale"?, "saved_places"?}."""
    try:
        doc = json.loads(content)
    except ValueError:
        return ParseRequest(content)
    if not isinstance(doc, dict):
        return ParseRequest(content)
    places = doc.get("saved_places") or []
    return ParseRequest(
        text=str(doc.get("sentence") or ""),
        locale=str(doc.get("locale") or ""),
        address_labels=tuple(str(p) for p in places if isinstance(p, str)),
    )


def stable_draw(seed: int, text: str, salt: str) -> float:
    """A number in [0, 1) fixed by (seed, sentence, salt)."""
    digest = hashlib.blake2b(f"{seed}\x00{salt}\x00{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def tool_calls_message(calls: list[tuple[str, dict[str, Any]]], turn: int) -> Message:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": f"call_{turn}_{i}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False)},
            }
            for i, (name, args) in enumerate(calls)
        ],
    }


class SimulatedModel:
    def __init__(self, catalog: Catalog, *, seed: int = 7, search_rate: float = 1.0, quote_rate: float = 0.0):
        self.catalog = catalog
        self.rules = RulesBackend(catalog)
        self.seed = seed
        self.search_rate = search_rate
        self.quote_rate = quote_rate
        # What the rules parser read, by request: a conversation's later turns and the promotion mix's
        # repeated sentences are read once (the simulator stands in for GPUs elsewhere; its CPU is the
        # benchmark machine's, which the platform needs).
        self._readings: dict[tuple[str, str, tuple[str, ...]], ParseResult] = {}

    def read(self, request: ParseRequest) -> ParseResult:
        key = (request.text, request.locale, tuple(request.address_labels))
        reading = self._readings.get(key)
        if reading is None:
            if len(self._readings) >= READINGS_KEPT:
                self._readings.clear()
            reading = self._readings[key] = self.rules.parse_one(request)
        return reading

    def answer(self, body: dict[str, Any]) -> Message:
        conversation = Conversation.of(body)
        request = conversation.request
        reading = self.read(request)
        if reading.needs_clarification or not reading.actions:
            return {"role": "assistant", "content": ""}  # nothing to order: no tool call
        cjk = any("\u3400" <= ch <= "\u9fff" for ch in request.text)
        names = [self._name(a, cjk) for a in reading.actions]
        if (
            SEARCH_CATALOG in conversation.offered
            and not conversation.searched
            and stable_draw(self.seed, request.text, "search") < self.search_rate
        ):
            queries = list(dict.fromkeys(n for n in names if n))
            if queries:
                return tool_calls_message(
                    [(SEARCH_CATALOG, {"query": q}) for q in queries], conversation.turn
                )
        actions = [
            self._arguments(a, self._found(a, n, conversation, cjk))
            for a, n in zip(reading.actions, names, strict=True)
        ]
        if (
            QUOTE_PLAN in conversation.offered
            and not conversation.quoted
            and stable_draw(self.seed, request.text, "quote") < self.quote_rate
        ):
            plan = [{"tool": tool, **args} for tool, args in actions]
            return tool_calls_message([(QUOTE_PLAN, {"actions": plan})], conversation.turn)
        return tool_calls_message(actions, conversation.turn)

    def _name(self, action: Action, cjk: bool) -> str:
        """How the model names the product: the catalog's name of what the rules parser read."""
        if action.tool == BOOK_RAIL:
            return ""  # a train is named by its route (origin, destination)
        product = self.catalog.product(action.sku) if action.sku else None
        if product is None:
            return action.product_query
        return product.name_zh if cjk and product.name_zh else product.name

    def _found(self, action: Action, name: str, conversation: Conversation, cjk: bool) -> str:
        """The name the catalog search returned for this product, when the model searched."""
        for result in conversation.searched.get(name, []):
            if result.get("id") == action.sku:
                return str(result.get("name_zh") if cjk and result.get("name_zh") else result.get("name"))
        return name

    @staticmethod
    def _arguments(action: Action, name: str) -> tuple[str, dict[str, Any]]:
        fields: dict[str, Any]
        if action.tool == ORDER_ITEM:
            fields = {
                "product_query": name,
                "quantity": action.quantity,
                "deliver_to": action.deliver_to,
                "time": action.time,
            }
        elif action.tool == BOOK_RIDE:
            fields = {
                "product_query": name,
                "origin": action.origin,
                "destination": action.destination or action.deliver_to or "home",
                "time": action.time,
                "passengers": action.passengers,
            }
        elif action.tool == BOOK_RAIL:
            fields = {
                "origin": action.origin,
                "destination": action.destination,
                "time": action.time,
                "passengers": action.passengers,
            }
        elif action.tool == BOOK_HOTEL:
            fields = {"product_query": name, "nights": action.nights, "time": action.time}
        else:  # pragma: no cover - the rules parser answers with these four only
            fields = {}
        return action.tool, {k: v for k, v in fields.items() if v not in ("", 0, None)}
