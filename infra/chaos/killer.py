"""The chaos monkey: SIGKILL the broker, Redis and every service, spread over the run.

What it kills, and how often:

* the **broker** (the Kafka JVM, `platform.kill("broker")`) `broker_kills` times and **Redis**
  `redis_kills` times, at evenly spread points of the submission time, broker and Redis taking turns;
* a **service** in between, dealt from a shuffled deck, so that every service is killed once before
  any is killed again (`service_kills` is the least each must get).

The platform's watcher restarts whatever dies; the killer never restarts anything itself. It waits on
readiness, never on a fixed sleep: one failure at a time, each kill made only while the whole platform
serves, and followed by a wait until the killed process runs again, answers (Kafka: a metadata
request; Redis: PING), and every service says SERVING again (their gRPC health follows their Kafka and
Redis connections). `Kill.back_s` is that time. Then `every_s` (±50%) of calm before the next kill.
(Killing faster than the processes come back only stacks the watcher's restart backoff: a platform that
never serves is not a useful experiment.)

The broker is killed only when it keeps its log across a restart (`BrokerServer.durable`: Apache
Kafka with its log on disk, or tansu with s3 storage). tansu's memory storage would come back empty,
data loss by construction rather than a finding; then `broker_note` says why it was spared.

If the submission ends before every minimum is reached (slow restarts on a small machine), `catch_up`
makes the missing kills while the last orders settle; each such kill is marked `phase="catch-up"`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from yiju.common.redis import INFRA_ERRORS
from yiju_infra.local.broker import kafka_metadata_ready
from yiju_infra.local.platform import SERVICES, LocalPlatform, ServiceNotReadyError
from yiju_infra.local.processes import port_accepts_async

log = logging.getLogger(__name__)

INFRA_TARGETS = ("broker", "redis")
_POLL_S = 0.1


@dataclass
class Kill:
    at_s: float  # seconds since the killer began
    target: str
    pid: int
    phase: str = "submit"  # "submit": while sentences were being submitted; "catch-up": after
    back_s: float | None = None  # seconds until it served again (infra: and every service); None: not seen


@dataclass
class Killer:
    """Kills the broker, Redis and the services of `platform` over `duration_s` seconds (see the module
    docstring); `kills` is the log."""

    platform: LocalPlatform
    every_s: float  # mean seconds of calm (±50%) between the platform serving again and the next kill
    duration_s: float
    broker_kills: int = 3
    redis_kills: int = 2
    service_kills: int = 1  # each service at least this many times
    seed: int = 7
    recover_timeout_s: float = 180.0
    on_kill: Callable[[Kill], None] | None = None  # called with each kill (progress display)
    began: float = field(default_factory=time.monotonic)
    kills: list[Kill] = field(default_factory=list)
    _deck: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    # ----- what may be killed, and how often at least

    @property
    def broker_killable(self) -> bool:
        """True when the platform runs its own broker and that broker keeps its log across a restart."""
        broker = self.platform.broker
        return broker is not None and bool(broker.durable)

    @property
    def broker_note(self) -> str:
        """Whether the broker is killed, and why not, for the report."""
        broker = self.platform.broker
        if broker is None:
            return "not killed: the platform uses a shared broker it did not start"
        if not broker.durable:
            return (
                f"not killed: {broker.description} keeps its log in memory and would restart empty "
                "(data loss by construction, not a finding)"
            )
        return "killed with SIGKILL (its log is on disk and survives the process)"

    def minimums(self) -> dict[str, int]:
        """The least number of kills each process must get over the run."""
        out = {"broker": self.broker_kills if self.broker_killable else 0, "redis": self.redis_kills}
        out.update(dict.fromkeys(SERVICES, self.service_kills))
        return {k: v for k, v in out.items() if v > 0}

    def missing(self) -> dict[str, int]:
        """Kills still owed to reach `minimums` (empty when every minimum is met)."""
        done = self.by_target()
        return {k: n - done.get(k, 0) for k, n in self.minimums().items() if done.get(k, 0) < n}

    def by_target(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for kill in self.kills:
            out[kill.target] = out.get(kill.target, 0) + 1
        return dict(sorted(out.items()))

    def recovery(self) -> dict[str, dict[str, float | int]]:
        """Per process: how many kills it came back from, and the median and longest time it took."""
        times: dict[str, list[float]] = {}
        for kill in self.kills:
            if kill.back_s is not None:
                times.setdefault(kill.target, []).append(kill.back_s)
        return {
            name: {
                "kills_back": len(ts),
                "median_s": round(statistics.median(ts), 1),
                "max_s": round(max(ts), 1),
            }
            for name, ts in sorted(times.items())
        }

    def infra_schedule(self) -> list[tuple[float, str]]:
        """(seconds after `began`, target) of every broker and Redis kill: evenly spread over the
        submission time (at 1/(n+1), 2/(n+1), ... of it), the two taking turns."""
        counts = {"broker": self.broker_kills if self.broker_killable else 0, "redis": self.redis_kills}
        # Each target's kills sit at the middles of its own n equal slices; merging by position
        # interleaves them (3 and 2: broker, redis, broker, redis, broker).
        order = sorted(
            ((i + 0.5) / n, t) for t, n in counts.items() for i in range(n)
        )  # fmt: skip
        total = len(order)
        return [((k + 1) / (total + 1) * self.duration_s, t) for k, (_, t) in enumerate(order)]

    # ----- running

    async def run(self, stop: asyncio.Event) -> None:
        """Kills on schedule until `stop` is set (the submission is over)."""
        due = self.infra_schedule()
        while not stop.is_set():
            calm_until = self._elapsed() + self._interval()
            wake = min(calm_until, due[0][0]) if due else calm_until
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, wake - self._elapsed()))
                return
            target = due.pop(0)[1] if due and self._elapsed() >= due[0][0] else self._next_service()
            await self.kill(target, "submit")

    async def catch_up(self) -> None:
        """Makes the kills still owed (`missing`) now, one after the other, each waiting on readiness."""
        while owed := self.missing():
            target = min(owed, key=lambda t: (t not in INFRA_TARGETS, t))
            if await self.kill(target, "catch-up") is None:
                log.error("chaos: could not kill %s (not running); %s still owed", target, owed)
                return

    async def kill(self, target: str, phase: str) -> Kill | None:
        """Kills `target` once the whole platform serves, then waits until it serves again: the killed
        process runs again, answers (Kafka: metadata; Redis: PING), and every service says SERVING."""
        if not await self._platform_ready(time.monotonic() + self.recover_timeout_s):
            log.warning("chaos: the platform is not serving; killing %s anyway", target)
        kill = self._kill(target, phase)
        if kill is None:
            return None
        began = time.monotonic()
        deadline = began + self.recover_timeout_s
        back = await self._process_back(target, kill.pid, deadline)
        if back and target == "broker":
            back = await self._broker_answers(deadline)
        elif back and target == "redis":
            back = await self._redis_answers(deadline)
        if back and await self._platform_ready(deadline):
            kill.back_s = round(time.monotonic() - began, 2)
            log.info("chaos: %s is back, every service serving, %.1f s after its kill", target, kill.back_s)
        else:
            log.error(
                "chaos: %s (or a service) did not serve again within %.0f s of its kill (see %s)",
                target,
                self.recover_timeout_s,
                self.platform.logs_dir,
            )
        if self.on_kill is not None:
            self.on_kill(kill)
        return kill

    def _next_service(self) -> str:
        """The next service of a shuffled deck of all of them (a new deck when it is empty)."""
        if not self._deck:
            self._deck = self._rng.sample(SERVICES, len(SERVICES))
        return self._deck.pop()

    def _kill(self, target: str, phase: str) -> Kill | None:
        if target == "broker" and not self.broker_killable:
            return None
        pid = self.platform.pids.get(target)
        if pid is None:  # not running (still restarting)
            return None
        self.platform.kill(target)
        kill = Kill(round(self._elapsed(), 2), target, pid, phase)
        self.kills.append(kill)
        log.info("chaos: kill -9 %s (pid %s) at %.1f s [%s]", target, pid, kill.at_s, phase)
        return kill

    # ----- readiness

    def _elapsed(self) -> float:
        return time.monotonic() - self.began

    def _interval(self) -> float:
        return self.every_s * self._rng.uniform(0.5, 1.5)

    async def _process_back(self, target: str, old_pid: int | None, deadline: float) -> bool:
        """Waits until the watcher has started `target` again (a running process other than old_pid)."""
        while time.monotonic() < deadline:
            pid = self.platform.pids.get(target)
            if pid is not None and pid != old_pid:
                return True
            await asyncio.sleep(_POLL_S)
        return False

    async def _broker_answers(self, deadline: float) -> bool:
        """Waits until the broker's port accepts connections, then until it answers a metadata request."""
        broker = self.platform.broker
        assert broker is not None
        while not await port_accepts_async(broker.port, broker.host, 0.5):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(_POLL_S)
        try:
            await kafka_metadata_ready(self.platform.bootstrap, timeout=max(deadline - time.monotonic(), 1.0))
        except TimeoutError:
            return False
        return True

    async def _redis_answers(self, deadline: float) -> bool:
        client = aioredis.Redis.from_url(self.platform.redis_url, socket_timeout=1.0)
        try:
            while time.monotonic() < deadline:
                try:
                    if await client.ping():
                        return True
                except INFRA_ERRORS:
                    pass
                await asyncio.sleep(_POLL_S)
            return False
        finally:
            await client.aclose()

    async def _platform_ready(self, deadline: float) -> bool:
        """Waits until every infrastructure process runs and every service says SERVING."""
        for name in self.platform.infra:
            if not await self._process_back(name, None, deadline):
                return False
        try:
            await self.platform.wait_ready(timeout=max(deadline - time.monotonic(), 1.0), fail_fast=False)
        except ServiceNotReadyError:
            return False
        return True
