"""The one tool schema: what a model answer may contain, and how invalid answers are refused."""

from __future__ import annotations

import pytest

from yiju.model_gateway.tools import (
    MAX_QUANTITY,
    TOOL_NAMES,
    InvalidModelOutput,
    actions_json_schema,
    openai_tools,
    validate_action,
    validate_answer,
)


def test_tool_definitions_cover_every_tool_and_never_mention_money() -> None:
    tools = openai_tools()
    assert [t["function"]["name"] for t in tools] == list(TOOL_NAMES)
    text = str(tools) + str(actions_json_schema())
    for forbidden in ("price", "total", "payer", "amount", "merchant"):
        assert forbidden not in text


def test_valid_answer_becomes_actions() -> None:
    result = validate_answer(
        {
            "actions": [
                {"tool": "order_item", "product_query": "bubble tea", "quantity": 2, "deliver_to": "office"},
                {"tool": "book_ride", "destination": "home", "time": "7pm"},
                {"tool": "book_hotel", "product_query": "hangzhou hotel", "nights": 2},
                {"tool": "book_rail", "destination": "shanghai", "origin": "beijing", "passengers": 3},
            ]
        }
    )
    order, ride, hotel, rail = result.actions
    assert (order.product_query, order.quantity, order.deliver_to) == ("bubble tea", 2, "office")
    assert (ride.quantity, ride.destination) == (1, "home")
    assert hotel.quantity == 2
    assert rail.quantity == 3


@pytest.mark.parametrize(
    "answer",
    [
        None,
        {"actions": "no"},
        {"actions": [{"tool": "transfer_money", "amount": 5}]},
        {"actions": [{"tool": "order_item", "product_query": "tea", "quantity": 0}]},
        {"actions": [{"tool": "order_item", "product_query": "tea", "quantity": MAX_QUANTITY + 1}]},
        {"actions": [{"tool": "order_item", "product_query": "tea", "quantity": 1.5}]},
        {"actions": [{"tool": "order_item", "product_query": "tea", "quantity": True}]},
        {"actions": [{"tool": "order_item", "product_query": "tea", "quantity": 1, "price_fen": 1}]},
        {"actions": [{"tool": "order_item", "quantity": 1}]},
        {"actions": [{"tool": "order_item", "product_query": "x" * 500, "quantity": 1}]},
        {"actions": [], "clarification": 5},
    ],
)
def test_invalid_answers_are_refused(answer: object) -> None:
    with pytest.raises(InvalidModelOutput):
        validate_answer(answer)


def test_string_digits_are_accepted_as_integers() -> None:
    assert validate_action("order_item", {"product_query": "tea", "quantity": "3"}).quantity == 3
