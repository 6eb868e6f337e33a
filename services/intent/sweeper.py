"""The timeout sweep: no order is left hanging.

Every open order sits in a Redis sorted set scored by the time of its last change (see
`yiju.intent.store.OPEN_ORDERS_KEY`). Every `YIJU_SWEEP_INTERVAL_S` one intent replica (the holder of a
Redis lock with a TTL) looks at the orders idle for longer than `YIJU_SWEEP_AFTER_S`:

* AWAITING_CONFIRMATION past its expiry is cancelled ("confirmation expired"), through the same atomic
  decision as a user's cancel; planning gives the subsidy back on OrderCancelled.
* ACCEPTED, PLANNED, AUTHORIZED, FULFILLED (and a confirmed order still waiting for its plan) are first
  *re-driven*: the event the stuck step consumes is published again with a new, deterministic event id
  (`<type>/redrive/<n>`), so the consumer's de-duplication does not drop it. Every consumer is idempotent
  per order (remembered decisions, wallet scripts keyed by order id), so a re-drive never moves money
  or dispatches twice; it resumes an order whose event was lost (intent died between creating the order
  and publishing it) or dead-lettered by a transient fault.
* After `YIJU_SWEEP_REDRIVES` re-drives the order is *compensated*. Fulfilment's remembered outcome
  (`decision:fulfilment:<order>`, SET NX) is the one point where "cancel" and "dispatch" meet: the sweeper
  claims it as failed. If it wins, nothing can be dispatched for the order any more, and any
  authorization payment holds now or later is voided (payment voids on FulfilmentFailed):
  ACCEPTED and PLANNED ("payment timed out") orders are cancelled (OrderCancelled: planning releases
  the subsidy), an AUTHORIZED order fails ("fulfilment timed out": FulfilmentFailed, payment voids).
  If fulfilment had decided first, that outcome is re-driven instead (capture or void).
* FULFILLED orders (goods out) are never cancelled: the capture is re-driven with backoff and counted
  as stuck (`yiju_sweeper_actions_total{action="stuck"}`) for an operator (see the dead letters).

Idle is not stuck while the pipeline is behind or the broker is away: an order's next event may be
queued, or its step may be unable to publish. So a pass is skipped while any consumer group of the
pipeline lags by more than `YIJU_SWEEP_MAX_LAG` records, as the cluster sees it (committed offsets of
every replica against the log ends: `yiju.common.group_lag`), or while the cluster can't say; and after
such a pause (and after a start) the sweeper waits `YIJU_SWEEP_SETTLE_S` (default: `YIJU_SWEEP_AFTER_S`)
of a healthy pipeline before it acts again, so an order is only ever judged on time the platform could
have moved it. An attempt (re-drive or compensation) counts once its event is published: a publish that
fails during an outage does not use up the order's re-drives.

Several replicas are safe: one holds the lock; and if two ever act on one order, the same attempt yields
the same event id and every claim is atomic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import Counter as Tally
from datetime import datetime
from typing import TYPE_CHECKING

from google.protobuf.message import Message
from prometheus_client import Counter
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio.client import Redis

from yiju.common.broker import EventPublisher
from yiju.common.decisions import DecisionStore
from yiju.common.envelope import event_id, spec_for
from yiju.common.group_lag import GroupLag
from yiju.common.metrics import CONSUMER_LAG
from yiju.common.orders import RANK, TERMINAL_RANK, OrderStatus
from yiju.common.redis import INFRA_ERRORS
from yiju.common.settings import Settings
from yiju.common.topics import FULFILMENT, INTENT_INTAKE, INTENT_PROJECTION, PAYMENT, PLANNING
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.intent.store import OrderStore, now_ms

if TYPE_CHECKING:
    from yiju.common.service import Service

log = logging.getLogger(__name__)
S = OrderStatus

SWEEPS = Counter("yiju_sweeper_actions_total", "What the timeout sweep did to idle orders", ["action"])
# The groups whose backlog can hold an order's next step (their lag means "queued", not "stuck").
PIPELINE_GROUPS = (INTENT_INTAKE, INTENT_PROJECTION, PLANNING, PAYMENT, FULFILMENT)
LOCK_KEY = "sweeper:lock"
CONFIRMED = "CONFIRMED"  # AWAITING_CONFIRMATION with the user's confirmation recorded
_LOCK_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_UNLOCK_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
CANCEL_REASONS = {
    S.ACCEPTED: "not planned in time",
    CONFIRMED: "not planned in time after the confirmation",
    S.PLANNED: "payment timed out",
}


class SweepSettings(BaseSettings):
    """YIJU_SWEEP_* settings."""

    model_config = SettingsConfigDict(env_prefix="YIJU_SWEEP_", extra="ignore")

    enabled: bool = True
    after_s: float = 120.0  # an order idle this long is looked at
    interval_s: float = 5.0  # how often the lock holder sweeps
    redrives: int = 1  # re-drives of a stuck step before it is compensated
    batch: int = 200  # orders looked at per sweep
    max_lag: int = 1000  # skip a sweep while a pipeline consumer group is this many records behind
    settle_s: float | None = None  # healthy time needed after a pause or a start (default: after_s)
    cluster_lag_guard: bool = True  # ask the cluster for every group's lag (off: this process's only)

    @property
    def settle_after_s(self) -> float:
        return self.after_s if self.settle_s is None else self.settle_s

    @property
    def lock_ttl_ms(self) -> int:
        return int(max(10.0, 3 * self.interval_s) * 1000)


def _epoch_ms(iso: str) -> int | None:
    try:
        return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _since(history: list[str], status: str) -> int | None:
    """When the order entered `status` (from its history entries "STATUS|at"), in ms."""
    times = [_epoch_ms(at) for s, _, at in (h.partition("|") for h in history) if s == status]
    known = [t for t in times if t is not None]
    return min(known) if known else None


def _model_deadline_ms(doc: dict[str, str]) -> int:
    """Until when planning waits for the model (the projection's "model" section; 0 if unknown)."""
    try:
        return int(json.loads(doc.get("model") or "{}").get("deadline_ms", 0))
    except (ValueError, TypeError, AttributeError):
        return 0


class Sweeper:
    """Finds idle orders and resumes or compensates them (see the module docstring)."""

    def __init__(
        self,
        store: OrderStore,
        publisher: EventPublisher,
        redis: Redis,
        settings: Settings,
        config: SweepSettings | None = None,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.redis = redis
        self.settings = settings
        self.config = config or SweepSettings()
        self.planning = DecisionStore(redis, "planning", settings.dedup_ttl_s)
        self.fulfilment = DecisionStore(redis, "fulfilment", settings.dedup_ttl_s)
        self.token = uuid.uuid4().hex
        self._lock = redis.register_script(_LOCK_LUA)
        self._unlock = redis.register_script(_UNLOCK_LUA)
        self._task: asyncio.Task[None] | None = None
        self.group_lag = GroupLag(settings) if self.config.cluster_lag_guard else None
        self._healthy_since: float | None = None  # monotonic time the pipeline was last seen caught up

    # ----- lifecycle

    async def start(self) -> None:
        if self.config.enabled:
            self._task = asyncio.create_task(self.run(), name="yiju-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(*INFRA_ERRORS):
            await self._unlock(keys=[LOCK_KEY], args=[self.token])
        if self.group_lag is not None:
            await self.group_lag.close()

    async def run(self) -> None:
        while True:
            try:
                done = await self.sweep_once()
                if done:
                    log.info("sweep", extra={"actions": dict(done)})
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis or Kafka away: try again next time
                log.warning("sweep failed", extra={"error": repr(exc)})
            await asyncio.sleep(self.config.interval_s)

    async def hold_lock(self) -> bool:
        """Takes or renews the sweep lock; True while this replica is the one sweeping."""
        return bool(await self._lock(keys=[LOCK_KEY], args=[self.token, self.config.lock_ttl_ms]))

    # ----- sweeping

    @staticmethod
    def projection_lag() -> int:
        """Records the order projection of this process has not applied yet (its consumer's lag)."""
        return int(
            sum(
                sample.value
                for metric in CONSUMER_LAG.collect()
                for sample in metric.samples
                if sample.labels.get("group") == INTENT_PROJECTION.name
            )
        )

    async def pipeline_lag(self) -> int:
        """The largest backlog of a pipeline consumer group, across every replica (the cluster's view),
        or of this process's projection when the cluster guard is off. Raises when the cluster can't say."""
        if self.group_lag is None:
            return self.projection_lag()
        # The cluster's figures only: a replica's own gauges can be stale for partitions it has lost.
        return max((await self.group_lag.of(PIPELINE_GROUPS)).values())

    async def pipeline_settled(self, done: Tally[str]) -> bool:
        """True once the pipeline has been caught up (and the broker reachable) for the settle time."""
        try:
            lag = await self.pipeline_lag()
        except Exception as exc:  # broker away or slow to answer: nothing can be judged stuck now
            self._healthy_since = None
            done["skipped_unreachable"] += 1
            log.warning("sweep paused: consumer lag unknown", extra={"error": repr(exc)})
            return False
        if lag > self.config.max_lag:  # idle may only mean "queued": statuses and steps are behind
            self._healthy_since = None
            done["skipped_behind"] += 1
            return False
        clock = asyncio.get_running_loop().time()
        if self._healthy_since is None:
            self._healthy_since = clock
        if clock - self._healthy_since < self.config.settle_after_s:
            done["skipped_settling"] += 1
            return False
        return True

    async def sweep_once(self, now: int | None = None) -> Tally[str]:
        """One pass over the idle orders (if this replica holds the lock); returns what it did."""
        done: Tally[str] = Tally()
        if not await self.hold_lock():
            return done
        if not await self.pipeline_settled(done):
            return done
        now = now if now is not None else now_ms()
        idle_before = now - int(self.config.after_s * 1000)
        for order_id, _ in await self.store.open_orders(idle_before, self.config.batch):
            action = await self.sweep_order(order_id, now)
            done[action] += 1
            SWEEPS.labels(action).inc()
        return done

    async def sweep_order(self, order_id: str, now: int) -> str:
        doc, history = await self.store.raw(order_id)
        if not doc.get("user_id"):  # gone (TTL), or a stray event for an order nobody created
            await self.store.forget(order_id)
            return "forgotten"
        status = doc.get("status", "")
        if status == S.REFUND_PENDING:  # the money must come back: re-driven with backoff, never cancelled
            return await self._refund_stuck(order_id, doc, now)
        if int(doc.get("rank", 0)) >= TERMINAL_RANK or status not in RANK:
            await self.store.forget(order_id)
            return "closed"
        if status == S.AWAITING_CONFIRMATION and doc.get("decision") != "confirmed":
            return await self._expire(order_id, doc, history, now)
        if status == S.AWAITING_MODEL:  # never judged before the model deadline (+ after_s of margin)
            deadline = _model_deadline_ms(doc)
            if now < deadline + int(self.config.after_s * 1000):
                await self.store.touch(order_id, deadline)
                return "awaiting_model"
            status = S.ACCEPTED  # planning should have ended it at the deadline: resumed like ACCEPTED
        step = CONFIRMED if status == S.AWAITING_CONFIRMATION else status
        attempts = await self._attempts(order_id, step)
        if attempts < self.config.redrives and await self._redrive(order_id, step, doc, attempts + 1):
            await self._note(order_id, step, attempts + 1)  # counted once published
            await self.store.touch(order_id, now)
            log.warning("order re-driven", extra={"order_id": order_id, "status": step, "n": attempts + 1})
            return "redriven"
        return await self._compensate(order_id, step, doc, now, attempts + 1)

    async def _refund_stuck(self, order_id: str, doc: dict[str, str], now: int) -> str:
        """A refund asked for and not done: OrderRefundRequested again (payment refunds once per order,
        fulfilment remembers its cancellations), with the same backoff as a missing capture."""
        step = S.REFUND_PENDING
        n = await self._attempts(order_id, step) + 1
        await self._publish(
            ev.OrderRefundRequested(
                order_id=order_id,
                user_id=doc["user_id"],
                requested_by=doc.get("refund_requested_by", ""),
                reason=doc.get("refund_reason", ""),
                requested_at=doc.get("refund_requested_at", ""),
            ),
            redrive=n,
        )
        await self._note(order_id, step, n)
        await self.store.touch(order_id, now + int(self.config.after_s * 1000) * 2 ** min(n - 1, 6))
        log.warning("refund re-driven", extra={"order_id": order_id, "n": n})
        return "refund_redriven"

    async def _expire(self, order_id: str, doc: dict[str, str], history: list[str], now: int) -> str:
        decision = await self.planning.get(order_id)
        if isinstance(decision, ev.PlanAwaitingConfirmation) and decision.expires_at_ms:
            expires = decision.expires_at_ms
        else:
            since = _since(history, S.AWAITING_CONFIRMATION) or now
            expires = since + self.settings.confirmation_ttl_s * 1000
        if now < expires:  # look again when it expires
            await self.store.touch(order_id, expires - int(self.config.after_s * 1000))
            return "waiting"
        ok, _ = await self.store.decide(order_id, "cancelled")
        if not ok:  # the user answered meanwhile
            return "raced"
        await self._publish(
            ev.OrderCancelled(order_id=order_id, user_id=doc["user_id"], reason="confirmation expired")
        )
        await self.store.touch(order_id, now)
        log.info("confirmation expired", extra={"order_id": order_id})
        return "expired"

    async def _attempts(self, order_id: str, step: str) -> int:
        seen = await self.redis.hgetall(f"sweep:{order_id}")
        return int(seen.get("n", 0)) if seen.get("step") == step else 0

    async def _note(self, order_id: str, step: str, n: int) -> None:
        key = f"sweep:{order_id}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping={"step": step, "n": n})
            pipe.expire(key, self.settings.dedup_ttl_s)
            await pipe.execute()

    async def _plan(self, order_id: str, user_id: str) -> ev.PlanCreated | None:
        decision = await self.planning.get(order_id)
        if isinstance(decision, ev.PlanCreated):
            return decision
        if isinstance(decision, ev.PlanAwaitingConfirmation):
            return ev.PlanCreated(order_id=order_id, user_id=user_id, plan=decision.plan)
        return None

    async def _redrive(self, order_id: str, step: str, doc: dict[str, str], n: int) -> bool:
        """Publishes again what the stuck step consumes, under a new event id; False if it cannot."""
        user_id = doc["user_id"]
        message: Message | None = None
        if step == S.ACCEPTED:
            message = ev.IntentAccepted(
                order_id=order_id,
                user_id=user_id,
                text=doc.get("text", ""),
                locale=doc.get("locale", ""),
                accepted_at_ms=_epoch_ms(doc.get("created_at", "")) or 0,
            )
        elif step == CONFIRMED:
            message = ev.OrderConfirmed(order_id=order_id, user_id=user_id)
        elif step == S.PLANNED:
            message = await self._plan(order_id, user_id)
        elif step == S.AUTHORIZED:
            planned = await self._plan(order_id, user_id)
            if planned is not None:
                message = ev.PaymentAuthorized(
                    order_id=order_id,
                    user_id=user_id,
                    amount_fen=planned.plan.total_fen,
                    authorization_id=f"auth-{order_id}",
                    plan=planned.plan,
                )
        elif step == S.FULFILLED:
            message = await self.fulfilment.get(order_id)
        if message is None:
            return False
        await self._publish(message, redrive=n)
        return True

    async def _compensate(self, order_id: str, step: str, doc: dict[str, str], now: int, n: int) -> str:
        user_id = doc["user_id"]
        after_ms = int(self.config.after_s * 1000)
        if step == S.FULFILLED:  # goods are out: never cancel; keep asking for the capture, with backoff
            if await self._redrive(order_id, step, doc, n):
                SWEEPS.labels("redriven").inc()
            await self._note(order_id, step, n)
            await self.store.touch(order_id, now + after_ms * 2 ** min(n, 6))
            log.error("order stuck after fulfilment: capture missing", extra={"order_id": order_id})
            return "stuck"
        reason = (
            "fulfilment timed out" if step == S.AUTHORIZED else f"order cancelled: {CANCEL_REASONS[step]}"
        )
        guard = ev.FulfilmentFailed(order_id=order_id, user_id=user_id, reason=reason)
        standing = await self.fulfilment.remember(order_id, guard)
        await self.store.touch(order_id, now)
        await self._note(order_id, step, n)
        if standing != guard:  # fulfilment decided first: let payment settle on that outcome
            await self._publish(standing, redrive=n)
            log.warning("fulfilment outcome re-driven", extra={"order_id": order_id, "status": step})
            return "redriven"
        if step == S.AUTHORIZED:
            await self._publish(guard)  # payment voids the authorization
            log.warning("fulfilment timed out", extra={"order_id": order_id})
            return "timed_out"
        await self._publish(
            ev.OrderCancelled(order_id=order_id, user_id=user_id, reason=CANCEL_REASONS[step])
        )
        log.warning("stuck order cancelled", extra={"order_id": order_id, "status": step})
        return "cancelled"

    async def _publish(self, message: Message, *, redrive: int = 0) -> None:
        order_id: str = message.order_id  # type: ignore[attr-defined]
        eid = event_id(order_id, f"{spec_for(message).type}/redrive/{redrive}") if redrive else None
        await self.publisher.publish(
            message, order_id, eid=eid, extra_headers={"ce_source": "yiju/intent-sweeper"}
        )


def install_sweeper(service: Service, store: OrderStore) -> Sweeper:
    """Creates the sweeper and starts/stops it with the service (intent's app calls this)."""
    assert service.publisher is not None
    sweeper = Sweeper(store, service.publisher, service.redis, service.settings)
    service.on_start.append(sweeper.start)
    service.on_stop.append(sweeper.stop)
    return sweeper
