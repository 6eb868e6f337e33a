"""Backend for any OpenAI-compatible chat-completions server (vLLM, SGLang, Ollama, Model Studio).

One conversation per sentence, all of a micro-batch at once over one long-lived httpx connection
pool (the server batches them on the GPU). Two modes:
- tools (default): the action tools (`tool_choice` auto|required) and, with a toolbox, the
  read-only tools, over up to YIJU_GATEWAY_MAX_TURNS turns (yiju.model_gateway.turns): the model
  may search the catalog, read the saved places or quote a plan before it answers; the answer is
  read from `message.tool_calls`, or from Qwen's `<tool_call>` text when the server returned it
  as content;
- json_schema: one turn, `response_format={"type": "json_schema", ...}` with actions_json_schema().
Every turn is a span with its token counts. A reply that does not fit the tool schema, or no answer
within the turn and token budget, comes back as InvalidAnswer for that sentence (its tokens
counted); an unreachable server, a timeout or an HTTP error raises, so the gateway falls back.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from yiju.model_gateway import metrics
from yiju.model_gateway.backends.base import BackendAnswer, InvalidAnswer
from yiju.model_gateway.config import OpenAISettings
from yiju.model_gateway.toolbox import ReadOnlyTools
from yiju.model_gateway.tools import InvalidModelOutput, ParseRequest, ParseResult, actions_json_schema
from yiju.model_gateway.turns import Conversation, TurnBudget, Usage, record_turn, turn_span

# The order a request is for (ParseRequest.order_id, on the Kafka path), for the server's own accounting
# (the simulated Qwen counts model calls per order with it); never part of the prompt.
ORDER_ID_HEADER = "X-Yiju-Order-Id"


class BackendUnavailable(RuntimeError):
    """The server could not be reached or answered with an error status."""


def first_message(doc: Any) -> Any:
    """`choices[0].message` of a chat completion, or None."""
    choices = doc.get("choices") if isinstance(doc, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    return choices[0].get("message")


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        settings: OpenAISettings,
        *,
        timeout_s: float = 5.0,
        toolbox: ReadOnlyTools | None = None,
        budget: TurnBudget | None = None,
    ) -> None:
        """Without a toolbox the model gets the action tools only, and one turn per sentence."""
        if not settings.base_url:
            raise ValueError("the openai backend needs YIJU_OPENAI_BASE_URL (e.g. http://vllm:8000/v1)")
        self.settings = settings
        self.toolbox = toolbox
        self.budget = budget or TurnBudget()
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self._client = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(settings.connect_timeout_s, timeout_s)),
            limits=httpx.Limits(
                max_connections=settings.max_connections, max_keepalive_connections=settings.max_connections
            ),
        )
        self._schema = {"name": "actions", "strict": True, "schema": actions_json_schema()}

    def conversation(self, request: ParseRequest) -> Conversation:
        return Conversation(request, self.toolbox, self.budget)

    def body(self, conversation: Conversation | ParseRequest) -> dict[str, Any]:
        """The request body of the conversation's next turn."""
        if isinstance(conversation, ParseRequest):
            conversation = self.conversation(conversation)
        body: dict[str, Any] = {
            "model": self.settings.model,
            "messages": conversation.messages,
            "temperature": self.settings.temperature,
            "max_tokens": conversation.max_tokens(self.settings.max_tokens),
        }
        if self.settings.mode == "json_schema":
            body["response_format"] = {"type": "json_schema", "json_schema": self._schema}
        else:
            body["tools"] = conversation.tools()
            body["tool_choice"] = self.settings.tool_choice
        return {**body, **self.settings.extra_body}

    async def _post(self, body: dict[str, Any], order_id: str = "") -> Any:
        headers = {ORDER_ID_HEADER: order_id} if order_id else None
        try:
            reply = await self._client.post("/chat/completions", json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise TimeoutError(f"openai backend timed out: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"openai backend unreachable: {exc!r}") from exc
        if reply.status_code >= 400:
            raise BackendUnavailable(f"openai backend answered HTTP {reply.status_code}: {reply.text[:200]}")
        try:
            return reply.json()
        except ValueError:
            raise InvalidModelOutput("the reply is not JSON") from None

    async def _turn(self, conversation: Conversation) -> ParseResult | None:
        with turn_span(self.name, self.settings.model, conversation.turns + 1) as span:
            doc = await self._post(self.body(conversation), conversation.request.order_id)
            usage, message = Usage.of_reply(doc), first_message(doc)
            if isinstance(doc, dict) and isinstance(doc.get("model"), str):
                span.set_attribute("gen_ai.response.model", doc["model"])
            record_turn(span, usage, message)
            if self.settings.mode == "json_schema":
                return conversation.take_structured(message, usage)
            return conversation.take(message, usage)

    async def _one(self, request: ParseRequest) -> BackendAnswer:
        conversation = self.conversation(request)
        try:
            while True:
                result = await self._turn(conversation)
                if result is not None:
                    break
        except InvalidModelOutput as exc:
            return InvalidAnswer(str(exc), tokens_used=conversation.tokens)
        finally:
            metrics.TURNS.labels(self.name).observe(conversation.turns)
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
