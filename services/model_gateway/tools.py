"""The tool schema, defined once: what a model may say a sentence asks for, and what it may look up.

Every backend answers in these terms; the same definitions feed the model (OpenAI tool
definitions, JSON schema for constrained output) and validate what comes back. A tool call
names products, quantities, places and times only: never a price, a total or a payer.

Two kinds of tools:
- action tools (order_item, book_ride, book_rail, book_hotel): the answer;
- read-only tools (search_catalog, saved_places, quote_plan): what a model may look up over
  several turns before it answers (run by yiju.model_gateway.toolbox). Their arguments are
  validated here too: a quote takes the same actions as the answer, so no price, total or payer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MAX_QUANTITY = 99
MAX_ACTIONS = 10

ORDER_ITEM = "order_item"
BOOK_RIDE = "book_ride"
BOOK_RAIL = "book_rail"
BOOK_HOTEL = "book_hotel"
TOOL_NAMES = (ORDER_ITEM, BOOK_RIDE, BOOK_RAIL, BOOK_HOTEL)

SEARCH_CATALOG = "search_catalog"
SAVED_PLACES = "saved_places"
QUOTE_PLAN = "quote_plan"
READ_ONLY_TOOL_NAMES = (SEARCH_CATALOG, SAVED_PLACES, QUOTE_PLAN)
MAX_SEARCH_RESULTS = 10
MAX_QUERY_CHARS = 100


class InvalidModelOutput(ValueError):
    """A backend answered something that does not fit the tool schema."""


@dataclass(slots=True)
class Action:
    tool: str
    product_query: str = ""
    sku: str = ""
    quantity: int = 1
    deliver_to: str = ""
    time: str = ""
    origin: str = ""
    destination: str = ""
    nights: int = 0
    passengers: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in ("", 0) or k in ("tool", "quantity")}


@dataclass(slots=True)
class ParseRequest:
    text: str
    locale: str = ""
    tenant_id: str = ""
    user_id: str = ""
    address_labels: tuple[str, ...] = ()
    # The order it is for (the Kafka path): sent to a model server as a request header (ORDER_ID_HEADER),
    # never in the prompt, and not part of the cache key.
    order_id: str = ""


@dataclass(slots=True)
class ParseResult:
    actions: list[Action] = field(default_factory=list)
    confidence: float = 0.0
    backend: str = ""
    tokens_used: int = 0
    clarification: str = ""
    cached: bool = False

    @property
    def needs_clarification(self) -> bool:
        return bool(self.clarification) or not self.actions


_STRING = {"type": "string"}
_QUANTITY = {"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY}
_WHEN = {"type": "string", "description": "When, as said: 'at 7pm', 'tomorrow', '明天'."}

TOOL_PARAMETERS: dict[str, dict[str, Any]] = {
    ORDER_ITEM: {
        "description": "Buy food, groceries or goods from the catalog for delivery.",
        "properties": {
            "product_query": {**_STRING, "description": "The product as the user named it."},
            "quantity": _QUANTITY,
            "deliver_to": {**_STRING, "description": "Saved place label (home, office) or empty."},
            "time": _WHEN,
        },
        "required": ["product_query", "quantity"],
    },
    BOOK_RIDE: {
        "description": "Book a taxi or ride.",
        "properties": {
            "product_query": {**_STRING, "description": "Ride class as said: taxi, premium car."},
            "origin": _STRING,
            "destination": _STRING,
            "time": _WHEN,
            "passengers": {"type": "integer", "minimum": 1, "maximum": 6},
        },
        "required": ["destination"],
    },
    BOOK_RAIL: {
        "description": "Buy high-speed rail tickets.",
        "properties": {
            "origin": _STRING,
            "destination": _STRING,
            "time": _WHEN,
            "passengers": {"type": "integer", "minimum": 1, "maximum": 9},
        },
        "required": ["destination"],
    },
    BOOK_HOTEL: {
        "description": "Book a hotel room.",
        "properties": {
            "product_query": {**_STRING, "description": "Hotel or city as said."},
            "nights": {"type": "integer", "minimum": 1, "maximum": 30},
            "time": _WHEN,
        },
        "required": ["product_query", "nights"],
    },
}


def _action_variants() -> list[dict[str, Any]]:
    """One JSON-schema object per action tool, with its name in "tool"."""
    return [
        {
            "type": "object",
            "properties": {"tool": {"const": name}, **spec["properties"]},
            "required": ["tool", *spec["required"]],
            "additionalProperties": False,
        }
        for name, spec in TOOL_PARAMETERS.items()
    ]


READ_ONLY_TOOL_PARAMETERS: dict[str, dict[str, Any]] = {
    SEARCH_CATALOG: {
        "description": "Find catalog products whose name matches a query: ids and names, no prices.",
        "properties": {
            "query": {"type": "string", "maxLength": MAX_QUERY_CHARS, "description": "Words to look for."},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_SEARCH_RESULTS},
        },
        "required": ["query"],
    },
    SAVED_PLACES: {
        "description": "The labels of the customer's saved places (home, office, ...).",
        "properties": {},
        "required": [],
    },
    QUOTE_PLAN: {
        "description": "Price a candidate plan from the catalog before answering. Takes the same "
        "actions as the answer (tool and arguments); prices come from the catalog only.",
        "properties": {
            "actions": {"type": "array", "minItems": 1, "maxItems": MAX_ACTIONS, "items": {"anyOf": []}},
        },
        "required": ["actions"],
    },
}
READ_ONLY_TOOL_PARAMETERS[QUOTE_PLAN]["properties"]["actions"]["items"]["anyOf"] = _action_variants()


def _function_tools(parameters: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": spec["description"],
                "parameters": {
                    "type": "object",
                    "properties": spec["properties"],
                    "required": spec["required"],
                    "additionalProperties": False,
                },
            },
        }
        for name, spec in parameters.items()
    ]


def openai_tools() -> list[dict[str, Any]]:
    """Action tool definitions for chat completions (`tools=`)."""
    return _function_tools(TOOL_PARAMETERS)


def openai_read_only_tools() -> list[dict[str, Any]]:
    """Read-only tool definitions, offered on the turns before the last one."""
    return _function_tools(READ_ONLY_TOOL_PARAMETERS)


def actions_json_schema() -> dict[str, Any]:
    """JSON schema for constrained output (`response_format={"type": "json_schema", ...}`)."""
    variants = _action_variants()
    return {
        "type": "object",
        "properties": {
            "actions": {"type": "array", "maxItems": MAX_ACTIONS, "items": {"anyOf": variants}},
            "clarification": {"type": "string"},
        },
        "required": ["actions"],
        "additionalProperties": False,
    }


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidModelOutput(f"{name} must be an integer")
    try:
        number = int(value)
    except ValueError as exc:
        raise InvalidModelOutput(f"{name} must be an integer") from exc
    if number != float(value) or not low <= number <= high:
        raise InvalidModelOutput(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return number


def validate_action(tool: str, arguments: dict[str, Any]) -> Action:
    """Checks one tool call against the schema and returns it as an Action."""
    spec = TOOL_PARAMETERS.get(tool)
    if spec is None:
        raise InvalidModelOutput(f"unknown tool {tool!r}")
    if not isinstance(arguments, dict):
        raise InvalidModelOutput("tool arguments must be an object")
    unknown = set(arguments) - set(spec["properties"]) - {"tool"}
    if unknown:
        raise InvalidModelOutput(f"{tool}: unexpected arguments {sorted(unknown)}")
    missing = [r for r in spec["required"] if arguments.get(r) in (None, "")]
    if missing:
        raise InvalidModelOutput(f"{tool}: missing {missing}")
    action = Action(tool=tool)
    for key, value in arguments.items():
        if key == "tool":
            continue
        schema = spec["properties"][key]
        if schema["type"] == "integer":
            setattr(action, key, _int(value, key, schema["minimum"], schema["maximum"]))
        else:
            if not isinstance(value, str) or len(value) > 200:
                raise InvalidModelOutput(f"{tool}.{key} must be a string of at most 200 characters")
            setattr(action, key, value.strip())
    if tool == BOOK_RAIL and not action.passengers:
        action.passengers = 1
    if tool in (BOOK_RAIL,):
        action.quantity = action.passengers
    elif tool == BOOK_HOTEL:
        action.quantity = action.nights
    elif tool == BOOK_RIDE:
        action.quantity = 1
    return action


def validate_answer(payload: Any) -> ParseResult:
    """Validates a whole structured answer {"actions": [...], "clarification": "..."}."""
    if not isinstance(payload, dict) or not isinstance(payload.get("actions"), list):
        raise InvalidModelOutput("answer must be an object with an 'actions' list")
    if len(payload["actions"]) > MAX_ACTIONS:
        raise InvalidModelOutput(f"at most {MAX_ACTIONS} actions")
    actions = []
    for item in payload["actions"]:
        if not isinstance(item, dict):
            raise InvalidModelOutput("each action must be an object")
        actions.append(validate_action(str(item.get("tool", "")), item))
    clarification = payload.get("clarification") or ""
    if not isinstance(clarification, str):
        raise InvalidModelOutput("clarification must be a string")
    return ParseResult(actions=actions, clarification=clarification)


def validate_read_only_call(tool: str, arguments: Any) -> dict[str, Any]:
    """Checks a read-only tool call against its schema; returns the arguments as the tool takes them
    (`quote_plan`: {"actions": [Action, ...]}). Raises InvalidModelOutput: unknown arguments such
    as a price, a total or a payer are refused, as in the answer."""
    spec = READ_ONLY_TOOL_PARAMETERS.get(tool)
    if spec is None:
        raise InvalidModelOutput(f"unknown read-only tool {tool!r}")
    if not isinstance(arguments, dict):
        raise InvalidModelOutput(f"{tool}: arguments must be an object")
    unknown = set(arguments) - set(spec["properties"])
    if unknown:
        raise InvalidModelOutput(f"{tool}: unexpected arguments {sorted(unknown)}")
    if tool == SEARCH_CATALOG:
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip() or len(query) > MAX_QUERY_CHARS:
            raise InvalidModelOutput(f"{tool}.query must be a string of 1 to {MAX_QUERY_CHARS} characters")
        limit = arguments.get("limit", 5)
        return {"query": query.strip(), "limit": _int(limit, "limit", 1, MAX_SEARCH_RESULTS)}
    if tool == QUOTE_PLAN:
        items = arguments.get("actions")
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_ACTIONS:
            raise InvalidModelOutput(f"{tool}.actions must be a list of 1 to {MAX_ACTIONS} actions")
        actions = []
        for item in items:
            if not isinstance(item, dict):
                raise InvalidModelOutput(f"{tool}: each action must be an object")
            actions.append(validate_action(str(item.get("tool", "")), item))
        return {"actions": actions}
    return {}
