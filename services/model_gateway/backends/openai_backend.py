"""Backend for any OpenAI-compatible chat-completions server (vLLM, SGLang, Ollama, Model Studio).

One conversation per sentence, all of a micro-batch at once over one long-lived aiohttp connection
pool (the server batches them on the GPU). aiohttp, not httpx: with a few hundred conversations in
flight, httpcore's pool bookkeeping (every request scans every connection) took ~40% of the gateway's
CPU. Bodies are written and read with orjson. Two modes:
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

import aiohttp
import orjson

from yiju.model_gateway import metrics
from yiju.model_gateway.backends.base import BackendAnswer, InvalidAnswer
from yiju.model_gateway.config import OpenAISettings
from yiju.model_gateway.toolbox import ReadOnlyTools
from yiju.model_gateway.tools import InvalidModelOutput, ParseRequest, ParseResult, actions_json_schema
from yiju.model_gateway.turns import Conversation, TurnBudget, Usage, record_turn, turn_span

# The order a request is for (ParseRequest.order_id, on the Kafka path), for the server's own accounting
# (the simulated Qwen counts model calls per order with it); never part of the prompt.
ORDER_ID_HEADER = "X-Yiju-Order-Id"
# Idle connections are dropped before the server's own keep-alive (uvicorn's, so vLLM's and SGLang's,
# is 5 s): a POST on a connection the server is just closing would fail, and is not retried.
KEEPALIVE_S = 4.0


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
        self._url = settings.base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Content-Type": "application/json"}
        if settings.api_key:
            self._headers["Authorization"] = f"Bearer {settings.api_key}"
        # Like httpx.Timeout(timeout_s, connect=...): the whole call within timeout_s, a new connection
        # within connect_timeout_s. sock_connect, not connect: aiohttp's `connect` also counts the wait
        # for a free connection of the pool, which httpx bounded by timeout_s only.
        self._timeout = aiohttp.ClientTimeout(
            total=timeout_s, sock_connect=min(settings.connect_timeout_s, timeout_s)
        )
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
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

    def _session_now(self) -> aiohttp.ClientSession:
        """The long-lived session, made on first use in the running loop: an aiohttp session belongs
        to the loop it was made in, and the backend may be built before that loop runs."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(
                limit=self.settings.max_connections,
                limit_per_host=self.settings.max_connections,
                keepalive_timeout=KEEPALIVE_S,
            )
            # trust_env off (as aiohttp's default): the model server is addressed directly, and the
            # per-request proxy look-up would cost CPU on every turn.
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self._headers, timeout=self._timeout
            )
            self._loop = loop
        return self._session

    async def _post(self, body: dict[str, Any], order_id: str = "") -> Any:
        headers = {ORDER_ID_HEADER: order_id} if order_id else None
        try:
            async with self._session_now().post(self._url, data=orjson.dumps(body), headers=headers) as reply:
                status, raw = reply.status, await reply.read()
        except TimeoutError as exc:  # aiohttp's timeouts (ServerTimeoutError too) are TimeoutErrors
            raise TimeoutError(f"openai backend timed out: {exc!r}") from exc
        except aiohttp.ClientError as exc:
            raise BackendUnavailable(f"openai backend unreachable: {exc!r}") from exc
        if status >= 400:
            text = raw[:800].decode("utf-8", "replace")[:200]  # 200 characters: at most 800 bytes
            raise BackendUnavailable(f"openai backend answered HTTP {status}: {text}")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
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
        session, self._session, self._loop = self._session, None, None
        if session is not None and not session.closed:
            await session.close()
