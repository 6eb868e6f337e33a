"""Reads a model's reply into a ParseResult, or raises InvalidModelOutput.

Accepted forms, all validated against the one tool schema (tools.validate_action):
- OpenAI `message.tool_calls` (function.arguments a JSON string, or an object as some servers send);
- Qwen's raw text when the server did not parse it (no --tool-call-parser, or the in-process
  transformers backend): `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (Qwen2.5/Qwen3,
  "hermes" style) and the XML style of Qwen3-Coder/Qwen3.5
  `<tool_call><function=NAME><parameter=KEY>VALUE</parameter></function></tool_call>`;
- constrained JSON output {"actions": [...], "clarification": "..."} (json_schema mode).
`<think>...</think>` reasoning is dropped first. A reply that calls no tool is invalid in tools
mode: the gateway then retries, and falls back to the next backend.
"""

from __future__ import annotations

import json
import re
from typing import Any

from yiju.model_gateway.tools import (
    MAX_ACTIONS,
    InvalidModelOutput,
    ParseResult,
    validate_action,
    validate_answer,
)

MODEL_CONFIDENCE = 0.9
MAX_CLARIFICATION_CHARS = 300

_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S)
_TOOL_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)
_FUNCTION = re.compile(r"<function=([^>\s]+)>(.*?)(?:</function>|$)", re.S)
_PARAMETER = re.compile(r"<parameter=([^>\s]+)>(.*?)(?:</parameter>|(?=<parameter=)|$)", re.S)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)

Call = tuple[str, dict[str, Any]]


def strip_reasoning(text: str) -> str:
    text = _THINK.sub("", text)
    if "</think>" in text:  # the template opened <think> in the prompt; only its end is in the reply
        text = text.rsplit("</think>", 1)[1]
    return text.strip()


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError) as exc:
        raise InvalidModelOutput(f"{what} is not valid JSON: {text[:80]!r}") from exc


def _arguments(raw: Any) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    value = _json(raw, "tool arguments") if isinstance(raw, str) else raw
    if isinstance(value, str):  # arguments encoded twice
        value = _json(value, "tool arguments")
    if not isinstance(value, dict):
        raise InvalidModelOutput("tool arguments must be an object")
    return value


def _call_from_json(doc: Any) -> Call:
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        raise InvalidModelOutput("a tool call needs a name")
    return doc["name"], _arguments(doc.get("arguments", doc.get("parameters")))


def text_tool_calls(text: str) -> list[Call]:
    """Tool calls written as text by a Qwen model (JSON or XML inside <tool_call> tags)."""
    calls: list[Call] = []
    for block in (m.group(1).strip() for m in _TOOL_CALL.finditer(text)):
        function = _FUNCTION.search(block)
        if function:
            params = {k: v.strip() for k, v in _PARAMETER.findall(function.group(2))}
            calls.append((function.group(1), params))
        else:
            calls.append(_call_from_json(_json(block, "<tool_call> body")))
    return calls


def openai_tool_calls(tool_calls: Any) -> list[Call]:
    if not isinstance(tool_calls, list):
        raise InvalidModelOutput("tool_calls must be a list")
    calls = []
    for item in tool_calls:
        function = item.get("function") if isinstance(item, dict) else None
        if not isinstance(function, dict):
            raise InvalidModelOutput("a tool call needs a function")
        calls.append(_call_from_json(function))
    return calls


def result_from_calls(calls: list[Call]) -> ParseResult:
    if not calls:
        raise InvalidModelOutput("the model called no tool")
    if len(calls) > MAX_ACTIONS:
        raise InvalidModelOutput(f"at most {MAX_ACTIONS} tool calls")
    return ParseResult(
        actions=[validate_action(name, args) for name, args in calls], confidence=MODEL_CONFIDENCE
    )


def parse_text_reply(text: str) -> ParseResult:
    """A raw completion (transformers backend, or content of a server without a tool parser)."""
    body = strip_reasoning(text)
    calls = text_tool_calls(body)
    if not calls and body.startswith("{"):
        doc = _json(body, "reply")
        if isinstance(doc, dict) and "actions" in doc:
            return parse_structured(doc)
        calls = [_call_from_json(doc)]
    return result_from_calls(calls)


def parse_structured(doc: Any) -> ParseResult:
    """A constrained-output answer {"actions": [...], "clarification": "..."}."""
    result = validate_answer(doc)
    result.confidence = MODEL_CONFIDENCE if result.actions else 0.0
    result.clarification = result.clarification[:MAX_CLARIFICATION_CHARS]
    if not result.actions and not result.clarification:
        raise InvalidModelOutput("no actions and no clarification")
    return result


def message_calls(message: Any) -> list[Call]:
    """Tools mode: every tool call of a chat message, read-only ones included (OpenAI `tool_calls`,
    or Qwen's text forms in `content`); [] when it calls none. Arguments are not validated here."""
    if not isinstance(message, dict):
        raise InvalidModelOutput("the reply has no message")
    if message.get("tool_calls"):
        return openai_tool_calls(message["tool_calls"])
    content = message.get("content") or ""
    if not isinstance(content, str):
        raise InvalidModelOutput("message content must be text")
    body = strip_reasoning(content)
    calls = text_tool_calls(body)
    if not calls and body.startswith("{"):
        doc = _json(body, "reply")
        if isinstance(doc, dict) and isinstance(doc.get("name"), str):
            calls = [_call_from_json(doc)]
    return calls


def parse_chat_message(message: Any, mode: str = "tools") -> ParseResult:
    """`choices[0].message` of a chat completion."""
    if not isinstance(message, dict):
        raise InvalidModelOutput("the reply has no message")
    content = message.get("content") or ""
    if not isinstance(content, str):
        raise InvalidModelOutput("message content must be text")
    if message.get("tool_calls"):
        return result_from_calls(openai_tool_calls(message["tool_calls"]))
    if mode == "json_schema":
        body = strip_reasoning(content)
        fenced = _FENCE.match(body)
        return parse_structured(_json(fenced.group(1) if fenced else body, "structured answer"))
    return parse_text_reply(content)
