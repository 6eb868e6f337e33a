"""Injected faults of the simulated server, drawn per request from its seeded RNG."""

from __future__ import annotations

import json
import random
from typing import Any

from yiju.model_gateway.sim.config import SimConfig

ERROR, HANG, GARBAGE, SCHEMA = "error", "hang", "garbage", "schema_break"

GARBAGE_TEXTS = (
    "Sure! I'd love to help you with that order 😊 What else can I do?",
    '<tool_call>{"name": "order_item", "arguments": {"product_query": ',
    "茶茶茶茶茶茶茶茶茶茶茶茶",
    '{"actions": "two teas"}',
)
SCHEMA_BREAKS: tuple[tuple[str, Any], ...] = (
    ("order_item", {"product_query": "bubble tea", "quantity": 2, "price_fen": 1}),  # a price
    ("order_item", {"product_query": "bubble tea", "quantity": 2, "payer": "u-0"}),  # a payer
    ("order_item", {"product_query": "bubble tea", "quantity": 1000}),  # out of range
    ("book_hotel", {"product_query": "hangzhou hotel"}),  # missing nights
    ("transfer_money", {"to": "u-0", "amount_fen": 100}),  # an unknown tool
    ("order_item", "{product_query: tea"),  # arguments that are not JSON
)


def draw_fault(config: SimConfig, rng: random.Random) -> str | None:
    x = rng.random()
    for kind, rate in (
        (ERROR, config.error_rate),
        (HANG, config.hang_rate),
        (GARBAGE, config.garbage_rate),
        (SCHEMA, config.schema_break_rate),
    ):
        if x < rate:
            return kind
        x -= rate
    return None


def garbage_message(rng: random.Random) -> dict[str, Any]:
    return {"role": "assistant", "content": rng.choice(GARBAGE_TEXTS)}


def schema_breaking_message(rng: random.Random) -> dict[str, Any]:
    name, args = rng.choice(SCHEMA_BREAKS)
    arguments = args if isinstance(args, str) else json.dumps(args)
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_bad", "type": "function", "function": {"name": name, "arguments": arguments}}
        ],
    }
