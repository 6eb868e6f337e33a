"""Tool-calling turns: one sentence as a conversation in which the model may look things up first.

    turn 1: system + user  -> the model calls read-only tools (search_catalog, saved_places, quote_plan)
    turn 2: + the calls and their results -> ... -> the model answers with action tool calls

`Conversation` holds one sentence's messages (OpenAI wire format) and budget; a backend sends
`conversation.messages` with `conversation.tools()`, and hands each reply to `take()`, which either
runs the read-only calls and asks for another turn (returns None) or returns the validated answer.
Bounds per sentence (settings YIJU_GATEWAY_MAX_TURNS, YIJU_GATEWAY_MAX_SENTENCE_TOKENS): the last
allowed turn offers the action tools only, and a conversation over its token budget stops; either
way a model that has not answered is an invalid answer (retried, then the next backend), with its
tokens counted. Every turn is an OpenTelemetry span (`turn_span`) with the GenAI semantic
conventions' attributes: gen_ai.request.model, gen_ai.usage.input_tokens / output_tokens.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

from yiju.model_gateway.prompt import chat_messages
from yiju.model_gateway.replies import Call, message_calls, parse_chat_message, result_from_calls
from yiju.model_gateway.toolbox import ReadOnlyTools
from yiju.model_gateway.tools import (
    READ_ONLY_TOOL_NAMES,
    InvalidModelOutput,
    ParseRequest,
    ParseResult,
    openai_read_only_tools,
    openai_tools,
)

_tracer = trace.get_tracer("yiju.model_gateway")


@dataclass(frozen=True, slots=True)
class TurnBudget:
    max_turns: int = 4  # model calls per sentence, the answering one included
    max_tokens: int = 8000  # prompt + completion tokens per sentence, over all its turns


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def of_reply(cls, doc: Any) -> Usage:
        """`usage` of a chat completion (prompt_tokens/completion_tokens, else total_tokens)."""
        usage = doc.get("usage") if isinstance(doc, dict) else None
        if not isinstance(usage, dict):
            return cls()
        prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        if not prompt and not completion:
            return cls(0, int(usage.get("total_tokens") or 0))
        return cls(prompt, completion)


class BudgetExhausted(InvalidModelOutput):
    """The model had not answered when the sentence's turns or tokens ran out."""


@dataclass
class Conversation:
    request: ParseRequest
    toolbox: ReadOnlyTools | None = None
    budget: TurnBudget = field(default_factory=TurnBudget)
    messages: list[dict[str, Any]] = field(default_factory=list)
    turns: int = 0
    tokens: int = 0
    tool_calls: int = 0

    def __post_init__(self) -> None:
        if not self.messages:
            self.messages = list(chat_messages(self.request))

    @property
    def may_look_up(self) -> bool:
        """Read-only tools are offered on every turn but the last allowed one."""
        return self.toolbox is not None and self.turns + 1 < self.budget.max_turns

    def tools(self) -> list[dict[str, Any]]:
        return openai_tools() + (openai_read_only_tools() if self.may_look_up else [])

    def max_tokens(self, configured: int) -> int:
        """The completion limit of the next turn: the configured one, within what the budget has left."""
        return max(1, min(configured, self.budget.max_tokens - self.tokens))

    def take_structured(self, message: Any, usage: Usage) -> ParseResult:
        """The one turn of constrained-output mode: {"actions": [...], "clarification": "..."}."""
        self.turns += 1
        self.tokens += usage.total
        result = parse_chat_message(message, "json_schema")
        result.tokens_used = self.tokens
        return result

    def take(self, message: Any, usage: Usage) -> ParseResult | None:
        """One model reply: the answer, or None after running its read-only calls (ask again)."""
        self.turns += 1
        self.tokens += usage.total
        calls = message_calls(message)
        look_ups = [c for c in calls if c[0] in READ_ONLY_TOOL_NAMES]
        if look_ups and len(look_ups) == len(calls) and self.toolbox is not None:
            if not self.may_look_up_now():
                raise BudgetExhausted(
                    f"no answer after {self.turns} turns and {self.tokens} tokens "
                    f"(limits {self.budget.max_turns} turns, {self.budget.max_tokens} tokens)"
                )
            self._run_look_ups(message, look_ups)
            return None
        if calls:  # the answer; look-ups in the same reply are dropped
            result = result_from_calls([c for c in calls if c[0] not in READ_ONLY_TOOL_NAMES])
        else:
            result = parse_chat_message(message)
        result.tokens_used = self.tokens
        return result

    def may_look_up_now(self) -> bool:
        """A reply of look-ups only may be followed by another turn (turns and tokens left)."""
        return (
            self.toolbox is not None
            and self.turns < self.budget.max_turns
            and self.tokens < self.budget.max_tokens
        )

    def _run_look_ups(self, message: dict[str, Any], calls: list[Call]) -> None:
        assert self.toolbox is not None
        ids = [f"call_{self.turns}_{i}" for i in range(len(calls))]
        wire = message.get("tool_calls") if isinstance(message.get("tool_calls"), list) else None
        tool_calls = [
            {
                "id": (wire[i].get("id") if wire and isinstance(wire[i], dict) else None) or ids[i],
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False)},
            }
            for i, (name, args) in enumerate(calls)
        ]
        self.messages.append(
            {"role": "assistant", "content": message.get("content") or "", "tool_calls": tool_calls}
        )
        for call, (name, args) in zip(tool_calls, calls, strict=True):
            with tool_span(name):
                result = self.toolbox.run(name, args, self.request)
            self.tool_calls += 1
            self.messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call["id"],
                    "name": name,
                    "content": json.dumps(result, ensure_ascii=False),
                }
            )


@contextlib.contextmanager
def turn_span(system: str, model: str, turn: int) -> Iterator[trace.Span]:
    """One model call of a sentence: `chat {model}` (GenAI semantic conventions)."""
    with _tracer.start_as_current_span(f"chat {model}", kind=trace.SpanKind.CLIENT) as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.system", system)
        span.set_attribute("gen_ai.request.model", model)
        span.set_attribute("yiju.gateway.turn", turn)
        yield span


def record_turn(span: trace.Span, usage: Usage, message: Any) -> None:
    span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
    try:
        names = [name for name, _ in message_calls(message)]
    except InvalidModelOutput:
        names = []
    span.set_attribute("yiju.gateway.tool_calls", names)


@contextlib.contextmanager
def tool_span(name: str) -> Iterator[trace.Span]:
    with _tracer.start_as_current_span(f"execute_tool {name}", kind=trace.SpanKind.INTERNAL) as span:
        span.set_attribute("gen_ai.operation.name", "execute_tool")
        span.set_attribute("gen_ai.tool.name", name)
        yield span


def finished_turn_span(
    system: str, model: str, turn: int, usage: Usage, content: str, start_ns: int, end_ns: int
) -> None:
    """A turn that ran inside a batched call (transformers backend): its span, after the fact."""
    span = _tracer.start_span(f"chat {model}", kind=trace.SpanKind.CLIENT, start_time=start_ns)
    span.set_attribute("gen_ai.operation.name", "chat")
    span.set_attribute("gen_ai.system", system)
    span.set_attribute("gen_ai.request.model", model)
    span.set_attribute("yiju.gateway.turn", turn)
    record_turn(span, usage, {"role": "assistant", "content": content})
    span.end(end_time=end_ns)
