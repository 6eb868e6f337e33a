"""The chaos client: submits sentences at a steady rate like a well-behaved client (same idempotency key
on every retry, backing off on 409/429/5xx and lost connections), answers confirmations, and watches
the orders until they settle."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from redis.asyncio.client import Redis

from yiju.common.orders import TERMINAL
from yiju_infra.chaos.workload import ANSWERED, Kind, Sentence

log = logging.getLogger(__name__)
RETRYABLE = frozenset({409, 429, 500, 502, 503, 504})
ACTIONS = {Kind.CONFIRM: "confirm", Kind.CANCEL: "cancel", Kind.REFUND: "refund"}


class Tokens:
    """Bearer tokens: the demo users' from $YIJU_DATA_DIR/credentials.json, others minted with the
    platform's secret (when the platform has authentication; otherwise requests carry no token)."""

    def __init__(self, data_dir: Path, settings: object | None = None) -> None:
        path = Path(data_dir) / "credentials.json"
        self.settings = settings
        self._tokens: dict[str, str] = {}
        if path.is_file():
            users = json.loads(path.read_text()).get("users", {})
            self._tokens = {u: e["token"] for u, e in users.items() if isinstance(e, dict) and e.get("token")}

    def headers(self, user_id: str) -> dict[str, str]:
        token = self._tokens.get(user_id)
        if token is None and self.settings is not None and getattr(self.settings, "jwt_secret", ""):
            from yiju.common.auth import issue_token

            token = self._tokens[user_id] = issue_token(user_id, self.settings)  # type: ignore[arg-type]
        return {"Authorization": f"Bearer {token}"} if token else {}


@dataclass
class Submission:
    sentence: Sentence
    order_id: str = ""
    attempts: int = 0
    replayed_order_id: str = ""  # what the resubmission with the same key returned
    error: str = ""
    answered: bool = False  # confirmation answered (confirm/cancel kinds), refund asked for (refund kind)


@dataclass
class Driver:
    api_url: str
    tokens: Tokens
    redis: Redis
    rate: float
    concurrency: int = 64
    give_up_s: float = 180.0
    submissions: list[Submission] = field(default_factory=list)
    requests: int = 0
    retries: dict[str, int] = field(default_factory=dict)
    on_submitted: Callable[[], None] = lambda: None

    async def _post(self, client: httpx.AsyncClient, sub: Submission, *, again: bool = False) -> None:
        s = sub.sentence
        deadline = time.monotonic() + self.give_up_s
        while True:
            sub.attempts += 1
            self.requests += 1
            why = ""
            try:
                reply = await client.post(
                    "/v1/intents", json=s.body(), headers=self.tokens.headers(s.user_id)
                )
                if reply.status_code == 202:
                    order_id = reply.json()["order_id"]
                    if again:
                        sub.replayed_order_id = order_id
                    else:
                        sub.order_id = order_id
                    return
                if reply.status_code not in RETRYABLE:
                    sub.error = f"{reply.status_code}: {reply.text[:200]}"
                    return
                why = str(reply.status_code)
                delay = float(reply.headers.get("retry-after", 0)) if reply.status_code == 429 else 0.0
            except httpx.TransportError as exc:
                why, delay = type(exc).__name__, 0.0
            self.retries[why] = self.retries.get(why, 0) + 1
            if time.monotonic() > deadline:
                sub.error = f"gave up after {sub.attempts} attempts (last: {why})"
                return
            await asyncio.sleep(max(delay, 0.3 if why != "409" else 0.5))

    async def submit_all(self, sentences: list[Sentence]) -> None:
        """Submits every sentence at `rate` per second (never more than `concurrency` in flight)."""
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        gate = asyncio.Semaphore(self.concurrency)
        began = time.monotonic()
        async with httpx.AsyncClient(
            base_url=self.api_url, timeout=10, limits=limits, trust_env=False
        ) as client:

            async def one(sub: Submission) -> None:
                try:
                    await self._post(client, sub)
                    if sub.order_id and sub.sentence.resubmit:
                        await self._post(client, sub, again=True)
                finally:
                    gate.release()
                    self.on_submitted()

            tasks = []
            for i, sentence in enumerate(sentences):
                await asyncio.sleep(max(0.0, began + i / self.rate - time.monotonic()))
                await gate.acquire()
                sub = Submission(sentence)
                self.submissions.append(sub)
                tasks.append(asyncio.create_task(one(sub)))
            await asyncio.gather(*tasks)

    async def statuses(self) -> dict[str, str | None]:
        """Each accepted order's status, read straight from Redis (one pipeline)."""
        ids = [s.order_id for s in self.submissions if s.order_id]
        async with self.redis.pipeline(transaction=False) as pipe:
            for order_id in ids:
                pipe.hget(f"order:{{{order_id}}}", "status")
            return dict(zip(ids, await pipe.execute(), strict=True))

    async def answer_confirmations(self, statuses: dict[str, str | None]) -> None:
        """Confirms or cancels the orders waiting for it (the EXPIRE kind is left to the sweeper), and
        refunds the REFUND kind's orders once they completed."""
        waiting = [
            s
            for s in self.submissions
            if s.sentence.kind in ANSWERED
            and not s.answered
            and statuses.get(s.order_id) == ANSWERED[s.sentence.kind]
        ]
        if not waiting:
            return
        async with httpx.AsyncClient(base_url=self.api_url, timeout=10, trust_env=False) as client:
            for sub in waiting:
                action = ACTIONS[sub.sentence.kind]
                try:
                    reply = await client.post(
                        f"/v1/orders/{sub.order_id}/{action}",
                        headers=self.tokens.headers(sub.sentence.user_id),
                    )
                except httpx.TransportError:
                    continue
                if reply.status_code in (200, 409):  # 409: decided already (by us, or expired)
                    sub.answered = True

    async def answer_loop(self, stop: asyncio.Event, every_s: float = 1.0) -> None:
        """Answers confirmations while the run goes on (a user does not wait for the end of the test)."""
        while not stop.is_set():
            asking = [s for s in self.submissions if s.order_id and not s.answered]
            asking = [s for s in asking if s.sentence.kind in ANSWERED]
            if asking:
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for sub in asking:
                            pipe.hget(f"order:{{{sub.order_id}}}", "status")
                        found = await pipe.execute()
                    await self.answer_confirmations(
                        dict(zip([s.order_id for s in asking], found, strict=True))
                    )
                except Exception as exc:  # Redis or intent restarting: next time
                    log.debug("chaos: confirmations later: %r", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)

    async def resolve_unknown(self) -> None:
        """A client that gave up may still have created its order: look it up by its idempotency key."""
        for sub in self.submissions:
            if not sub.order_id:
                s = sub.sentence
                order_id = await self.redis.hget(f"idem:{{{s.user_id}}}:{s.idempotency_key}", "order_id")
                if order_id and await self.redis.exists(f"order:{{{order_id}}}"):
                    sub.order_id = order_id

    async def settle(
        self, timeout_s: float, on_progress: Callable[[int, int], None] = lambda done, total: None
    ) -> dict[str, str | None]:
        """Waits until every accepted order is terminal (answering confirmations meanwhile)."""
        deadline = time.monotonic() + timeout_s
        statuses: dict[str, str | None] = {}
        while True:
            try:
                statuses = await self.statuses()
                await self.answer_confirmations(statuses)
            except Exception as exc:  # Redis may be restarting
                log.warning("chaos: waiting for Redis: %r", exc)
                if time.monotonic() > deadline:
                    return statuses
                await asyncio.sleep(0.5)
                continue
            owed = {s.order_id for s in self.submissions if s.sentence.kind is Kind.REFUND}
            done = sum(
                1 for o, s in statuses.items() if s in TERMINAL and not (o in owed and s == "COMPLETED")
            )
            on_progress(done, len(statuses))
            if done == len(statuses) or time.monotonic() > deadline:
                return statuses
            await asyncio.sleep(1.0)
