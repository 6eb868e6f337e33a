"""Token estimates close to a Qwen tokenizer's, without one: about 4 characters of ASCII text per
token, and one token per CJK character (Qwen's vocabulary splits Chinese into 1-2 characters)."""

from __future__ import annotations

import json
from typing import Any

MESSAGE_OVERHEAD = 4  # <|im_start|>role\n ... <|im_end|>\n
TOOL_CALL_OVERHEAD = 6  # <tool_call>\n{"name": ..., "arguments": ...}\n</tool_call>


def count_tokens(text: str) -> int:
    cjk = sum(1 for ch in text if "\u3400" <= ch <= "\u9fff")
    rest = len(text) - cjk
    return cjk + (rest + 3) // 4


def prompt_tokens(body: dict[str, Any]) -> int:
    """Messages (content and earlier tool calls) plus the tool definitions, as a template renders them."""
    total = 0
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        total += MESSAGE_OVERHEAD + count_tokens(str(message.get("content") or ""))
        for call in message.get("tool_calls") or []:
            total += TOOL_CALL_OVERHEAD + count_tokens(
                json.dumps(call.get("function", {}), ensure_ascii=False)
            )
    tools = body.get("tools") or []
    if tools:
        total += count_tokens(json.dumps(tools, ensure_ascii=False)) + 20
    return total


def completion_tokens(message: dict[str, Any]) -> int:
    total = count_tokens(str(message.get("content") or "")) + 1  # + <|im_end|>
    for call in message.get("tool_calls") or []:
        total += TOOL_CALL_OVERHEAD + count_tokens(json.dumps(call["function"], ensure_ascii=False))
    return total
