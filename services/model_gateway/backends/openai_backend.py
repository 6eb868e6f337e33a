"""Backend for any OpenAI-compatible chat-completions server (vLLM, SGLang, Ollama, Model Studio).

One POST {base_url}/chat/completions per sentence, all of a micro-batch sent at once over one
long-lived httpx connection pool (the server batches them on the GPU). Two modes:
- tools (default): `tools=openai_tools()` and `tool_choice` auto|required; the answer is read
  from `message.tool_calls`, or from Qwen's `<tool_call>` text when the server returned it as content;
- json_schema: `response_format={"type": "json_schema", ...}` with tools.actions_json_schema().
A reply that does not fit the tool schema comes back as InvalidAnswer for that sentence; an
unreachable server, a timeout or an HTTP error raises, so the gateway falls back.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from yiju.model_gateway.backends.base import BackendAnswer, InvalidAnswer
from yiju.model_gateway.config import OpenAISettings
from yiju.model_gateway.prompt import chat_messages
from yiju.model_gateway.replies import parse_chat_message
from yiju.model_gateway.tools import InvalidModelOutput, ParseRequest, actions_json_schema, openai_tools


class BackendUnavailable(RuntimeError):
    """The server could not be reached or answered with an error status."""


class OpenAIBackend:
    name = "openai"

    def __init__(self, settings: OpenAISettings, *, timeout_s: float = 5.0) -> None:
        if not settings.base_url:
            raise ValueError("the openai backend needs YIJU_OPENAI_BASE_URL (e.g. http://vllm:8000/v1)")
        self.settings = settings
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self._client = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(settings.connect_timeout_s, timeout_s)),
            limits=httpx.Limits(
                max_connections=settings.max_connections, max_keepalive_connections=settings.max_connections
            ),
        )
        self._tools = openai_tools()
        self._schema = {"name": "actions", "strict": True, "schema": actions_json_schema()}

    def body(self, request: ParseRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.settings.model,
            "messages": chat_messages(request),
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_tokens,
        }
        if self.settings.mode == "json_schema":
            body["response_format"] = {"type": "json_schema", "json_schema": self._schema}
        else:
            body["tools"] = self._tools
            body["tool_choice"] = self.settings.tool_choice
        return {**body, **self.settings.extra_body}

    async def _one(self, request: ParseRequest) -> BackendAnswer:
        try:
            reply = await self._client.post("/chat/completions", json=self.body(request))
        except httpx.TimeoutException as exc:
            raise TimeoutError(f"openai backend timed out: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"openai backend unreachable: {exc!r}") from exc
        if reply.status_code >= 400:
            raise BackendUnavailable(f"openai backend answered HTTP {reply.status_code}: {reply.text[:200]}")
        try:
            doc = reply.json()
        except ValueError:
            return InvalidAnswer("the reply is not JSON")
        usage = doc.get("usage") if isinstance(doc, dict) else None
        tokens = int(usage.get("total_tokens") or 0) if isinstance(usage, dict) else 0
        try:
            choices = doc.get("choices") if isinstance(doc, dict) else None
            if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
                raise InvalidModelOutput("the reply has no choices")
            result = parse_chat_message(choices[0].get("message"), self.settings.mode)
        except InvalidModelOutput as exc:
            return InvalidAnswer(str(exc), tokens_used=tokens)
        result.tokens_used = tokens
        result.backend = self.name
        return result

    async def parse(self, requests: list[ParseRequest]) -> list[BackendAnswer]:
        answers = await asyncio.gather(*(self._one(r) for r in requests), return_exceptions=True)
        failures = [
            a for a in answers if isinstance(a, BaseException) and not isinstance(a, InvalidModelOutput)
        ]
        if failures and len(failures) == len(answers):
            raise failures[0]  # the server is down: one verdict for the circuit breaker
        return list(answers)

    async def aclose(self) -> None:
        await self._client.aclose()
