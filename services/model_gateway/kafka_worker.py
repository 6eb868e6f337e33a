"""The gateway's Kafka side: ParseRequested in, ParseCompleted out, the model called at most once per order.

Planning publishes a ParseRequested when it starts waiting for the model, and commits at once; this
worker answers it whenever the model has answered (seconds, or minutes on a slow link). Records are
consumed through an in-flight window (yiju.common.inflight): up to YIJU_GATEWAY_MAX_INFLIGHT model
requests at a time, the consumer paused beyond that (the backlog stays in Kafka, where KEDA sees it as
the group's lag), each request's offset committed only after its ParseCompleted is acknowledged.

Per order the gateway remembers what it did (`gateway:parse:{<order>}`, a hash):
- `claimed`: a model call was started (the claim is taken before the call, atomically);
- `answered`: the answer, stored before ParseCompleted is published.
A redelivered request (a crash, a rebalance, a re-drive) finds the claim: an answer is published again
as it was; a call still in flight elsewhere, or lost with a gateway that died mid-call, is *not* made
again. Planning's per-order deadline ends such an order (the rules backend or a MODEL_TIMEOUT
rejection), so no sentence goes to the model twice for the same order. A claim is given back only when
the call raised before any answer (an infrastructure error of the gateway, e.g. Redis down), so the
retry may call.
A request whose deadline has passed is not sent to the model at all (planning has stopped waiting).
"""

from __future__ import annotations

import base64
import logging
import time
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio.client import Redis

from yiju.common.consumer import BatchProcessor, EventContext, EventRouter, PermanentError
from yiju.common.inflight import InFlightConsumer
from yiju.common.topics import MODEL_GATEWAY
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.model_gateway.convert import request_from_pb, result_to_pb
from yiju.model_gateway.tools import ParseRequest, ParseResult

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from yiju.common.service import Service

log = logging.getLogger(__name__)

PARSE_REQUESTS = Counter(
    "yiju_gateway_parse_requests_total",
    "ParseRequested records by what the gateway did: called (the model), replayed (a stored answer), "
    "in_flight (claimed earlier: not called again), expired (past the order's deadline: not called)",
    ["outcome"],
)
ORDER_MODEL_CALLS = Counter(
    "yiju_gateway_order_model_calls_total",
    "Model calls of the Kafka path, by which call it was for its order (first; repeat must stay 0)",
    ["call"],
)
IN_FLIGHT = Gauge("yiju_gateway_model_in_flight", "ParseRequested records being answered by this replica")
MAX_TEXT_CHARS = 2000

_CLAIM_LUA = """
local state = redis.call('HGET', KEYS[1], 'state')
if state then
  return {state, redis.call('HGET', KEYS[1], 'answer') or '', redis.call('HGET', KEYS[1], 'calls') or '0'}
end
local calls = redis.call('HINCRBY', KEYS[1], 'calls', 1)
redis.call('HSET', KEYS[1], 'state', 'claimed', 'claimed_at_ms', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {'new', '', tostring(calls)}
"""


class WorkerSettings(BaseSettings):
    """YIJU_GATEWAY_* settings of the Kafka worker (the rest are in config.GatewaySettings)."""

    model_config = SettingsConfigDict(env_prefix="YIJU_GATEWAY_", extra="ignore")

    kafka_worker: bool = True  # consume yiju.parse.requested.v1 (the model path of planning)
    max_inflight: int = 256  # model requests being answered at once by one replica
    # The done prefix of ParseRequested is committed at most this often (and always on stop and on a
    # rebalance): one OffsetCommit per interval instead of one per answered request. A crash may
    # redeliver up to an interval's worth of answered requests; their claims replay the stored answers.
    commit_interval_ms: int = 200
    claim_ttl_s: int = 7 * 24 * 3600  # how long an order's claim and answer are kept
    # On SIGTERM, running requests get this long to finish (keep it under the orchestrator's kill
    # timeout, e.g. terminationGracePeriodSeconds); unfinished ones are left uncommitted.
    stop_grace_s: float = 10.0


def claim_key(order_id: str) -> str:
    return f"gateway:parse:{{{order_id}}}"


class ParseClaims:
    """Per order: claimed (a model call started) or answered (the ParseCompleted, stored)."""

    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._claim = redis.register_script(_CLAIM_LUA)

    async def claim(self, order_id: str) -> tuple[str, ev.ParseCompleted | None, int]:
        """('new', None, calls) when this caller may call the model; ('claimed', None, n) when a call
        was started before; ('answered', answer, n) when the answer is stored."""
        state, answer, calls = await self._claim(
            keys=[claim_key(order_id)], args=[int(time.time() * 1000), self.ttl_s]
        )
        stored = None
        if state == "answered" and answer:
            stored = ev.ParseCompleted()
            stored.ParseFromString(base64.b64decode(answer))
        return str(state), stored, int(calls)

    async def answer(self, order_id: str, completed: ev.ParseCompleted) -> None:
        encoded = base64.b64encode(completed.SerializeToString()).decode()
        await self.redis.hset(claim_key(order_id), mapping={"state": "answered", "answer": encoded})

    async def give_back(self, order_id: str) -> None:
        """The call raised before any answer: the next delivery may call."""
        await self.redis.hdel(claim_key(order_id), "state", "claimed_at_ms")

    async def calls(self, order_id: str) -> int:
        return int(await self.redis.hget(claim_key(order_id), "calls") or 0)


class ParseWorker:
    def __init__(self, parse: Callable[[ParseRequest], Awaitable[ParseResult]], claims: ParseClaims) -> None:
        self.parse = parse
        self.claims = claims

    def router(self) -> EventRouter:
        router = EventRouter(MODEL_GATEWAY)
        router.on(ev.ParseRequested)(self.on_parse_requested)
        return router

    async def on_parse_requested(self, event: ev.ParseRequested, ctx: EventContext) -> None:
        order_id = event.order_id
        text = event.request.text
        if not order_id or not text.strip() or len(text) > MAX_TEXT_CHARS:
            raise PermanentError("a parse request needs an order id and a text of 1..2000 characters")
        if event.deadline_ms and time.time() * 1000 >= event.deadline_ms:
            PARSE_REQUESTS.labels("expired").inc()
            log.warning(
                "parse request past its deadline: not sent to the model", extra={"order_id": order_id}
            )
            return
        state, stored, calls = await self.claims.claim(order_id)
        if state == "answered" and stored is not None:
            PARSE_REQUESTS.labels("replayed").inc()
            ctx.emit(stored, order_id)
            return
        if state != "new":
            PARSE_REQUESTS.labels("in_flight").inc()
            log.warning(
                "parse request already claimed: the model is not called again", extra={"order_id": order_id}
            )
            return
        ORDER_MODEL_CALLS.labels("first" if calls == 1 else "repeat").inc()
        IN_FLIGHT.inc()
        try:
            request = request_from_pb(event.request)
            request.order_id = order_id  # for the model server's per-order accounting (a header)
            result = await self.parse(request)
        except Exception:  # not CancelledError: a call cut short by a stop may have reached the model
            await self.claims.give_back(order_id)
            raise
        finally:
            IN_FLIGHT.dec()
        completed = ev.ParseCompleted(
            order_id=order_id,
            user_id=event.user_id,
            result=result_to_pb(result),
            model_calls=calls,
            answered_at_ms=int(time.time() * 1000),
        )
        await self.claims.answer(order_id, completed)
        PARSE_REQUESTS.labels("called").inc()
        ctx.emit(completed, order_id)


def install_worker(
    service: Service, parse: Callable[[ParseRequest], Awaitable[ParseResult]], settings: WorkerSettings
) -> InFlightConsumer:
    """Consumes ParseRequested for the service (app.py calls this when YIJU_GATEWAY_KAFKA_WORKER is on)."""
    assert service.publisher is not None
    worker = ParseWorker(parse, ParseClaims(service.redis, settings.claim_ttl_s))
    processor = BatchProcessor(worker.router(), service.publisher, service.redis, service.settings)
    consumer = InFlightConsumer(
        processor, service.settings, settings.max_inflight, commit_interval_ms=settings.commit_interval_ms
    )

    async def stop() -> None:
        # Runs before the model clients close (app.py registers them first): a call in flight gets up
        # to stop_grace_s to answer and publish. One still running then is cancelled and its offset
        # left uncommitted: the redelivery finds its claim and does not call the model again.
        running = consumer.in_flight
        if running:
            log.info(
                "stopping: waiting for model calls in flight",
                extra={"in_flight": running, "grace_s": settings.stop_grace_s},
            )
        await consumer.stop(settings.stop_grace_s)

    service.on_start.append(consumer.start)
    service.on_stop.append(stop)
    return consumer
