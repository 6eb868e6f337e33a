"""A scripted OpenAI-compatible server on 127.0.0.1, for tests and for running the gateway locally.

It serves POST /v1/chat/completions (and GET /v1/models) on the same event loop as the caller.
What it answers is `server.reply(body)`: a dict (HTTP 200 JSON), `(status, dict)`, or a str sent
as-is (to test replies that are not JSON). `delay_s` slows every answer; `stop()` and `start()`
take it down and bring it back on the same port, as a crashed and restarted model server would.

    python -m yiju.model_gateway.fake_openai [PORT]   # a naive "model" for local runs
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Reply = dict[str, Any] | tuple[int, dict[str, Any]] | str
Script = Callable[[dict[str, Any]], Reply]


def completion(message: dict[str, Any], total_tokens: int = 42) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": total_tokens - 10, "completion_tokens": 10, "total_tokens": total_tokens},
    }


def tool_calls_reply(calls: list[tuple[str, dict[str, Any] | str]], total_tokens: int = 42) -> dict[str, Any]:
    """OpenAI tool_calls; a str argument is sent verbatim (to test invalid JSON)."""
    tool_calls = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
        }
        for i, (name, args) in enumerate(calls)
    ]
    return completion({"content": None, "tool_calls": tool_calls}, total_tokens)


def content_reply(text: str, total_tokens: int = 42) -> dict[str, Any]:
    return completion({"content": text}, total_tokens)


def sentence_of(body: dict[str, Any]) -> str:
    """The customer sentence of a request sent by the gateway (the user message is JSON)."""
    for message in body.get("messages", []):
        if message.get("role") == "user":
            try:
                return str(json.loads(message["content"])["sentence"])
            except (ValueError, KeyError, TypeError):
                return str(message.get("content", ""))
    return ""


def naive_reply(body: dict[str, Any]) -> Reply:
    """Orders the sentence itself, once: enough to see the gateway work end to end."""
    return tool_calls_reply(
        [("order_item", {"product_query": sentence_of(body)[:200] or "?", "quantity": 1})]
    )


class FakeOpenAI:
    def __init__(self, reply: Script = naive_reply, *, port: int = 0, host: str = "127.0.0.1") -> None:
        self.reply = reply
        self.host = host
        self.port = port
        self.delay_s = 0.0
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        answer = self.reply(body)
        if isinstance(answer, str):
            return Response(answer, media_type="application/json")
        if isinstance(answer, tuple):
            status, doc = answer
            return JSONResponse(doc, status_code=status)
        return JSONResponse(answer)

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        # Leave the caller's signal handlers alone (uvicorn would take over SIGINT/SIGTERM).
        self._server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                await self._task  # raises why it could not start
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Closes the listener and every connection at once (in-flight calls get no answer)."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        self._server.force_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._server = self._task = None


async def _main(port: int) -> None:  # pragma: no cover - manual use
    server = FakeOpenAI(port=port)
    await server.start()
    print(f"fake OpenAI-compatible server on {server.url} (YIJU_OPENAI_BASE_URL={server.url})")
    await asyncio.Event().wait()


if __name__ == "__main__":  # pragma: no cover
    import sys

    asyncio.run(_main(int(sys.argv[1]) if len(sys.argv) > 1 else 8000))
