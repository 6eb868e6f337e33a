"""The simulated Qwen server over HTTP (aiohttp.web, in the caller's event loop).

aiohttp.web rather than Starlette on uvicorn: the benchmark drives hundreds of model conversations
through it, and its HTTP stack (C parser, no ASGI middleware layers) costs a fraction of the CPU;
a client that goes away cancels its handler (handler_cancellation), which frees the request's queue
place or slot as vLLM aborts a request, without a task per request watching for the disconnect.
Bodies are read and written with orjson.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

from yiju.common.catalog import Catalog, load_catalog
from yiju.model_gateway.backends.openai_backend import ORDER_ID_HEADER
from yiju.model_gateway.sim.answers import SimulatedModel
from yiju.model_gateway.sim.config import SimConfig
from yiju.model_gateway.sim.faults import (
    ERROR,
    GARBAGE,
    HANG,
    SCHEMA,
    draw_fault,
    garbage_message,
    schema_breaking_message,
)
from yiju.model_gateway.sim.latency import LognormalLatency, SlowShare
from yiju.model_gateway.sim.slots import SlotPool
from yiju.model_gateway.sim.tokens import completion_tokens, prompt_tokens
from yiju.model_gateway.tools import READ_ONLY_TOOL_NAMES

Sleep = Callable[[float], Awaitable[Any]]
MAX_BODY_BYTES = 16 * 1024 * 1024  # long tool conversations; aiohttp's default is 1 MiB


@dataclass
class SimStats:
    requests: int = 0  # chat completions received
    answered: int = 0  # 200 replies (garbage and schema-breaking ones included)
    look_ups: int = 0  # 200 replies that called read-only tools (a tool turn)
    aborted: int = 0  # the client went away while queued or served
    faults: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    busy_s: float = 0.0  # simulated service seconds, summed over requests (slot occupancy)
    in_flight: int = 0
    queued: int = 0
    max_in_flight: int = 0
    max_queued: int = 0
    slow: int = 0  # requests served slow_ms (SimConfig.slow_rate)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OrderCalls:
    """What the server did for one order (the gateway's X-Yiju-Order-Id header): GET /orders."""

    conversations: int = 0  # first turns: more than 1 is the sentence sent to the model again
    requests: int = 0  # turns, all conversations together
    service_s: float = 0.0  # simulated service time of its requests (no queueing)
    first_ms: float = 0.0  # wall clock: its first request arrived
    last_ms: float = 0.0  # wall clock: its last reply was sent (or the client went away)
    slow: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _completion(model: str, message: dict[str, Any], prompt: int, completion: int, n: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-sim-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(doc), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return _json({"error": {"message": message, "type": kind, "code": status}}, status)


def _sentence_key(body: dict[str, Any]) -> str:
    """The first user message: what identifies a sentence when no order id came with it."""
    for message in body["messages"]:
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


class SimulatedQwen:
    def __init__(
        self, config: SimConfig | None = None, *, catalog: Catalog | None = None, sleep: Sleep | None = None
    ) -> None:
        """`sleep(seconds)` replaces asyncio.sleep for the service time (tests pass a controllable one)."""
        self.config = config or SimConfig()
        if catalog is None:
            from yiju.common.settings import get_settings

            catalog = load_catalog(self.config.catalog_dir or get_settings().catalog_dir)
        self.catalog = catalog
        self._rng = random.Random(self.config.seed)
        self.latency = LognormalLatency(self.config.p50_ms, self.config.p99_ms, self._rng)
        self.model = SimulatedModel(
            catalog,
            seed=self.config.seed,
            search_rate=self.config.search_rate,
            quote_rate=self.config.quote_rate,
        )
        self.pool = SlotPool(self.config.slots)
        self.slow = SlowShare(self.config.slow_rate, self.config.slow_ms, self.config.seed)
        self._stats = SimStats()
        self.orders: dict[str, OrderCalls] = {}
        self._sleep: Sleep = sleep or asyncio.sleep
        self.port = self.config.port
        self._runner: web.AppRunner | None = None
        self.app = web.Application(client_max_size=MAX_BODY_BYTES)
        self.app.router.add_post("/v1/chat/completions", self._chat)
        self.app.router.add_get("/v1/models", self._models)
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/stats", self._stats_json)
        self.app.router.add_get("/orders", self._orders_json)

    # ----- addresses and stats

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}/v1"

    @property
    def stats(self) -> SimStats:
        self._stats.in_flight, self._stats.queued = self.pool.in_flight, self.pool.queued
        self._stats.max_in_flight, self._stats.max_queued = self.pool.max_in_flight, self.pool.max_queued
        return self._stats

    def gateway_env(self) -> dict[str, str]:
        """What points a model gateway at this server (its chain: the model, then the rules)."""
        return {
            "YIJU_GATEWAY_BACKENDS": "openai,rules",
            "YIJU_OPENAI_BASE_URL": self.url,
            "YIJU_OPENAI_MODEL": self.config.model,
        }

    # ----- HTTP

    async def _models(self, request: web.Request) -> web.Response:
        return _json({"object": "list", "data": [{"id": self.config.model, "object": "model"}]})

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _stats_json(self, request: web.Request) -> web.Response:
        return _json(self.stats.to_dict())

    async def _orders_json(self, request: web.Request) -> web.Response:
        return _json({order: calls.to_dict() for order, calls in self.orders.items()})

    async def _metrics(self, request: web.Request) -> web.Response:
        s = self.stats
        lines = [
            "# TYPE yiju_sim_slots gauge",
            f"yiju_sim_slots {self.config.slots}",
            "# TYPE yiju_sim_in_flight gauge",
            f"yiju_sim_in_flight {s.in_flight}",
            "# TYPE yiju_sim_queue_depth gauge",
            f"yiju_sim_queue_depth {s.queued}",
            "# TYPE yiju_sim_queue_depth_max gauge",
            f"yiju_sim_queue_depth_max {s.max_queued}",
            "# TYPE yiju_sim_requests_total counter",
            f'yiju_sim_requests_total{{outcome="answered"}} {s.answered}',
            f'yiju_sim_requests_total{{outcome="aborted"}} {s.aborted}',
            *(f'yiju_sim_requests_total{{outcome="{k}"}} {v}' for k, v in sorted(s.faults.items())),
            "# TYPE yiju_sim_prompt_tokens_total counter",
            f"yiju_sim_prompt_tokens_total {s.prompt_tokens}",
            "# TYPE yiju_sim_completion_tokens_total counter",
            f"yiju_sim_completion_tokens_total {s.completion_tokens}",
            "# TYPE yiju_sim_busy_seconds_total counter",
            f"yiju_sim_busy_seconds_total {s.busy_s:.6f}",
        ]
        return web.Response(
            body=("\n".join(lines) + "\n").encode(), headers={"Content-Type": "text/plain; version=0.0.4"}
        )

    async def _chat(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "the body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "messages must be a list")
        self._stats.requests += 1
        fault = draw_fault(self.config, self._rng)
        service_s = self.latency.sample_s()
        order_id = request.headers.get(ORDER_ID_HEADER, "")
        first_turn = not any(isinstance(m, dict) and m.get("role") == "assistant" for m in body["messages"])
        slow = first_turn and self.slow.is_slow(order_id or _sentence_key(body))
        if slow:
            self._stats.slow += 1
            service_s = self.slow.slow_s  # drawn all the same: the other requests' draws stay as they were
        calls = self._order_calls(order_id, first_turn, slow, service_s)
        try:
            return await self._serve(body, fault, service_s)
        except asyncio.CancelledError:
            # The client went away (aiohttp cancels the handler): its queue place or slot is freed on
            # the way out of _serve, as vLLM aborts it.
            self._stats.aborted += 1
            raise
        finally:
            if calls is not None:
                calls.last_ms = time.time() * 1000

    def _order_calls(
        self, order_id: str, first_turn: bool, slow: bool, service_s: float
    ) -> OrderCalls | None:
        if not order_id:
            return None
        calls = self.orders.get(order_id)
        if calls is None:
            calls = self.orders[order_id] = OrderCalls(first_ms=time.time() * 1000)
        calls.requests += 1
        calls.conversations += first_turn
        calls.service_s += service_s
        calls.slow = calls.slow or slow
        return calls

    async def _serve(self, body: dict[str, Any], fault: str | None, service_s: float) -> web.Response:
        async with self.pool.slot():
            began = time.monotonic()
            try:
                if fault == HANG:
                    self._count(HANG)
                    await self._sleep(self.config.hang_s)
                else:
                    await self._sleep(service_s * self.config.time_scale)
            finally:
                if fault == HANG:
                    elapsed = time.monotonic() - began
                    self._stats.busy_s += elapsed / self.config.time_scale if self.config.time_scale else 0.0
                else:
                    self._stats.busy_s += service_s
        if fault == HANG:
            return _error(504, "the model did not finish")
        if fault == ERROR:
            self._count(ERROR)
            status = self._rng.choice(self.config.error_statuses)
            return _error(status, "injected model server error")
        if fault == GARBAGE:
            self._count(GARBAGE)
            message = garbage_message(self._rng)
        elif fault == SCHEMA:
            self._count(SCHEMA)
            message = schema_breaking_message(self._rng)
        else:
            message = self.model.answer(body)
        prompt, completion = prompt_tokens(body), completion_tokens(message)
        self._stats.answered += 1
        self._stats.prompt_tokens += prompt
        self._stats.completion_tokens += completion
        calls = [c["function"]["name"] for c in message.get("tool_calls") or []]
        if calls and all(name in READ_ONLY_TOOL_NAMES for name in calls):
            self._stats.look_ups += 1
        return _json(_completion(self.config.model, message, prompt, completion, self._stats.requests))

    def _count(self, kind: str) -> None:
        self._stats.faults[kind] = self._stats.faults.get(kind, 0) + 1

    # ----- lifecycle

    async def start(self) -> str:
        """Serves on config.host:port (port 0: a free one) in this event loop; returns the base URL."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.host, self.port))
        self.port = sock.getsockname()[1]
        runner = web.AppRunner(
            self.app,
            handle_signals=False,  # leave the caller's SIGINT/SIGTERM handlers alone
            access_log=None,
            keepalive_timeout=30,
            handler_cancellation=True,  # a client that goes away aborts its request
            shutdown_timeout=1.0,  # a bound only: stop() has cancelled the requests in flight
        )
        await runner.setup()
        try:
            await web.SockSite(runner, sock, backlog=4096).start()
        except BaseException:
            await runner.cleanup()
            sock.close()
            raise
        self._runner = runner
        return self.url

    async def stop(self) -> None:
        """Closes the listener and every connection at once, as a crashed model server would: requests
        in flight get no answer, and are aborted as when their client goes away (a hung one would
        otherwise hold stop() for hang_s)."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for connection in runner.server.connections if runner.server is not None else []:
            connection.force_close()  # its handler is cancelled (handler_cancellation)
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
