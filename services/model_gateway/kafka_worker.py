"""The gateway's Kafka side: ParseRequested in, ParseCompleted out, the model called at most once per order.

Planning publishes a ParseRequested when it starts waiting for the model, and commits at once; this
worker answers it whenever the model has answered (seconds, or minutes on a slow link). Records are
consumed through an in-flight window (yiju.common.inflight): up to YIJU_GATEWAY_MAX_INFLIGHT model
requests at a time, the consumer paused beyond that (the backlog stays in Kafka, where KEDA sees it as
the group's lag), each request's offset committed only after its ParseCompleted is acknowledged.

Per order the gateway remembers what it did (`gateway:parse:{<order>}`, a hash):
- `claimed`: a model call was started (the claim is taken before the call, atomically);
- `answered`: the answer, stored before ParseCompleted is published (if one stands already, the "lost"
  answer of a replica that took this one for gone, that one is published again instead).
A claim names the replica that took it; each replica keeps a liveness key (`gateway:replica:{<id>}`,
refreshed every second, gone YIJU_GATEWAY_REPLICA_TTL_MS after its last refresh, deleted on a clean stop).
A redelivered request (a crash, a rebalance, a re-drive) finds the claim:
- answered: the answer is published again as it was;
- claimed by this replica: its call is running and will answer;
- claimed by another live replica (a rebalance moved the partition; that replica's call still runs and
  answers): held, looked at again every second, until it is answered (replayed) or its replica is gone,
  at most until the order's deadline;
- claimed by a replica that is gone (kill -9, a stop that cut a call short): the call is lost with it and
  is *not* made again; the gateway answers at once with a ParseCompleted that says so (`lost_reason`),
  and planning ends the wait as at its deadline (the rules backend or PlanRejected model_call_lost), so
  the order does not wait out the deadline for an answer that cannot come.
So no sentence goes to the model twice for the same order. A claim is given back only when the call
raised before any answer (an infrastructure error of the gateway, e.g. Redis down), so the retry may
call. A request whose deadline has passed is not sent to the model at all (planning has stopped waiting).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
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
    "in_flight (claimed by this replica, or by an unnamed one: not called again), held (claimed by "
    "another live replica: waited for), lost (claimed by a replica that is gone: answered as lost, not "
    "called), expired (past the order's deadline: not called)",
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
  local found = redis.call('HMGET', KEYS[1], 'answer', 'calls', 'replica', 'claimed_at_ms')
  return {state, found[1] or '', found[2] or '0', found[3] or '', found[4] or '0'}
end
local calls = redis.call('HINCRBY', KEYS[1], 'calls', 1)
redis.call('HSET', KEYS[1], 'state', 'claimed', 'claimed_at_ms', ARGV[1], 'replica', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {'new', '', tostring(calls), ARGV[3], ARGV[1]}
"""
# The answer is stored unless one stands already (a replica that took this one for gone stored "lost"
# first, and planning may have acted on it): then the standing one is returned, to be published again.
_ANSWER_LUA = """
local found = redis.call('HMGET', KEYS[1], 'state', 'answer')
if found[1] == 'answered' and found[2] then
  return found[2]
end
redis.call('HSET', KEYS[1], 'state', 'answered', 'answer', ARGV[1])
return ''
"""
# The claim of a replica that is gone becomes the stored "lost" answer (1), unless it changed meanwhile:
# the replica answered after all, or gave the claim back (0).
_MARK_LOST_LUA = """
local found = redis.call('HMGET', KEYS[1], 'state', 'replica')
if found[1] ~= 'claimed' or found[2] ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'answered', 'answer', ARGV[2], 'lost_replica', ARGV[1])
return 1
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
    # A replica's liveness key outlives its last refresh (every second) by this much: a claim whose
    # replica has been silent this long is taken as lost. Keep it under the consumer group's session
    # timeout (YIJU_KAFKA_SESSION_TIMEOUT_MS, 10 s): a killed replica's requests come back to another one
    # only after that timeout, and are then answered as lost at once, not held.
    replica_ttl_ms: int = 5000
    # On SIGTERM, running requests get this long to finish (keep it under the orchestrator's kill
    # timeout, e.g. terminationGracePeriodSeconds); unfinished ones are left uncommitted.
    stop_grace_s: float = 10.0


def claim_key(order_id: str) -> str:
    return f"gateway:parse:{{{order_id}}}"


def replica_key(replica: str) -> str:
    return f"gateway:replica:{{{replica}}}"


def new_replica_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass(frozen=True, slots=True)
class Claim:
    """An order's claim as the claim script found or made it."""

    state: str  # new (this caller may call the model), claimed (a call was started), answered
    stored: ev.ParseCompleted | None  # the stored answer, when answered
    calls: int  # model calls started for the order (the claim's count)
    replica: str  # the replica that claimed it ("" for a claim older than replica names)
    claimed_at_ms: int


class ParseClaims:
    """Per order: claimed (a model call started, by which replica) or answered (the ParseCompleted,
    stored); per replica: a liveness key while it runs."""

    def __init__(
        self, redis: Redis, ttl_s: int, replica: str | None = None, replica_ttl_ms: int = 5000
    ) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.replica = replica or new_replica_id()
        self.replica_ttl_ms = replica_ttl_ms
        self._claim = redis.register_script(_CLAIM_LUA)
        self._mark_lost = redis.register_script(_MARK_LOST_LUA)
        self._answer = redis.register_script(_ANSWER_LUA)

    async def claim(self, order_id: str) -> Claim:
        """Takes the claim for this replica if there is none; else reports the one that stands."""
        state, answer, calls, replica, claimed_at = await self._claim(
            keys=[claim_key(order_id)], args=[int(time.time() * 1000), self.ttl_s, self.replica]
        )
        return Claim(
            str(state),
            _decode(answer) if state == "answered" else None,
            int(calls),
            str(replica),
            int(claimed_at),
        )

    async def answer(self, order_id: str, completed: ev.ParseCompleted) -> ev.ParseCompleted:
        """Stores the answer; returns what stands: this one, or one stored before it (the "lost" answer
        of a replica that took this one for gone), which is then the one to publish."""
        standing = await self._answer(keys=[claim_key(order_id)], args=[_encode(completed)])
        return _decode(standing) or completed

    async def give_back(self, order_id: str) -> None:
        """The call raised before any answer: the next delivery may call."""
        await self.redis.hdel(claim_key(order_id), "state", "claimed_at_ms", "replica")

    async def calls(self, order_id: str) -> int:
        return int(await self.redis.hget(claim_key(order_id), "calls") or 0)

    async def beat(self) -> None:
        """This replica is alive for another replica_ttl_ms."""
        await self.redis.set(replica_key(self.replica), "1", px=self.replica_ttl_ms)

    async def leave(self) -> None:
        """A clean stop: the claims this replica still holds are lost from now on."""
        await self.redis.delete(replica_key(self.replica))

    async def alive(self, replica: str) -> bool:
        return bool(await self.redis.exists(replica_key(replica)))

    async def mark_lost(self, order_id: str, replica: str, lost: ev.ParseCompleted) -> bool:
        """True when `replica`'s claim became the stored `lost` answer; False when the claim changed
        meanwhile (answered after all, or given back)."""
        return bool(await self._mark_lost(keys=[claim_key(order_id)], args=[replica, _encode(lost)]))


def _encode(completed: ev.ParseCompleted) -> str:
    return base64.b64encode(completed.SerializeToString()).decode()


def _decode(answer: str | bytes) -> ev.ParseCompleted | None:
    if not answer:
        return None
    stored = ev.ParseCompleted()
    stored.ParseFromString(base64.b64decode(answer))
    return stored


class Heartbeat:
    """Refreshes the replica's liveness key every second while the worker runs; deletes it on stop."""

    def __init__(self, claims: ParseClaims, interval_s: float = 1.0) -> None:
        self.claims = claims
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.claims.beat()  # before the first claim
        self._task = asyncio.create_task(self._run(), name="gateway-replica-heartbeat")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.claims.beat()
            except Exception as exc:  # Redis away: the next beat retries (claims need Redis anyway)
                log.warning("replica heartbeat failed", extra={"error": repr(exc)})

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.claims.leave()


class ParseWorker:
    def __init__(
        self,
        parse: Callable[[ParseRequest], Awaitable[ParseResult]],
        claims: ParseClaims,
        hold_poll_s: float = 1.0,
    ) -> None:
        self.parse = parse
        self.claims = claims
        self.hold_poll_s = hold_poll_s

    def router(self) -> EventRouter:
        router = EventRouter(MODEL_GATEWAY)
        router.on(ev.ParseRequested)(self.on_parse_requested)
        return router

    async def on_parse_requested(self, event: ev.ParseRequested, ctx: EventContext) -> None:
        order_id = event.order_id
        text = event.request.text
        if not order_id or not text.strip() or len(text) > MAX_TEXT_CHARS:
            raise PermanentError("a parse request needs an order id and a text of 1..2000 characters")
        held = False
        while True:
            if event.deadline_ms and time.time() * 1000 >= event.deadline_ms:
                PARSE_REQUESTS.labels("expired").inc()
                log.warning(
                    "parse request past its deadline: not sent to the model", extra={"order_id": order_id}
                )
                return
            claim = await self.claims.claim(order_id)
            if claim.state == "answered" and claim.stored is not None:
                PARSE_REQUESTS.labels("replayed").inc()
                ctx.emit(claim.stored, order_id)
                return
            if claim.state == "new":
                await self._call(event, claim.calls, ctx)
                return
            if claim.replica in ("", self.claims.replica):
                # ours: the call is running and will answer (or an owner unknown: the deadline ends it)
                PARSE_REQUESTS.labels("in_flight").inc()
                log.warning(
                    "parse request already claimed: the model is not called again",
                    extra={"order_id": order_id},
                )
                return
            if not await self.claims.alive(claim.replica):
                if await self._answer_lost(event, claim, ctx):
                    return
                continue  # answered or given back meanwhile: look again
            if not held:
                held = True
                PARSE_REQUESTS.labels("held").inc()
            await asyncio.sleep(self.hold_poll_s)

    async def _call(self, event: ev.ParseRequested, calls: int, ctx: EventContext) -> None:
        order_id = event.order_id
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
        standing = await self.claims.answer(order_id, completed)
        PARSE_REQUESTS.labels("called").inc()
        ctx.emit(standing, order_id)

    async def _answer_lost(self, event: ev.ParseRequested, claim: Claim, ctx: EventContext) -> bool:
        """The claimant is gone: answers that the call was lost (stored, so a redelivery replays it).
        False when the claim changed meanwhile and must be looked at again."""
        now = int(time.time() * 1000)
        lost = ev.ParseCompleted(
            order_id=event.order_id,
            user_id=event.user_id,
            model_calls=claim.calls,
            answered_at_ms=now,
            lost_reason=(
                f"the model call was lost with gateway replica {claim.replica} "
                f"({(now - claim.claimed_at_ms) / 1000:.1f} s after it started); it is not made again"
            ),
        )
        if not await self.claims.mark_lost(event.order_id, claim.replica, lost):
            return False
        PARSE_REQUESTS.labels("lost").inc()
        log.warning(
            "model call lost with its gateway replica: answered as lost, not called again",
            extra={"order_id": event.order_id, "replica": claim.replica},
        )
        ctx.emit(lost, event.order_id)
        return True


def install_worker(
    service: Service, parse: Callable[[ParseRequest], Awaitable[ParseResult]], settings: WorkerSettings
) -> InFlightConsumer:
    """Consumes ParseRequested for the service (app.py calls this when YIJU_GATEWAY_KAFKA_WORKER is on)."""
    assert service.publisher is not None
    claims = ParseClaims(service.redis, settings.claim_ttl_s, replica_ttl_ms=settings.replica_ttl_ms)
    heartbeat = Heartbeat(claims)
    worker = ParseWorker(parse, claims)
    processor = BatchProcessor(worker.router(), service.publisher, service.redis, service.settings)
    consumer = InFlightConsumer(
        processor, service.settings, settings.max_inflight, commit_interval_ms=settings.commit_interval_ms
    )

    async def stop() -> None:
        # Runs before the model clients close (app.py registers them first): a call in flight gets up
        # to stop_grace_s to answer and publish. One still running then is cancelled and its offset
        # left uncommitted: the redelivery finds its claim, whose replica is gone once the liveness key
        # is deleted below, and answers it as lost without calling the model again.
        running = consumer.in_flight
        if running:
            log.info(
                "stopping: waiting for model calls in flight",
                extra={"in_flight": running, "grace_s": settings.stop_grace_s},
            )
        await consumer.stop(settings.stop_grace_s)
        await heartbeat.stop()

    service.on_start.append(heartbeat.start)  # the liveness key exists before the first claim
    service.on_start.append(consumer.start)
    service.on_stop.append(stop)
    return consumer
