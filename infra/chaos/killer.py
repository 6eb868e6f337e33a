"""The chaos monkey: SIGKILL the broker, Redis and every service, spread over the run.

What it kills, and how often:

* the **broker** (the Kafka JVM, `platform.kill("broker")`) `broker_kills` times and **Redis**
  `redis_kills` times, at evenly spread points of the submission time, broker and Redis taking turns;
* a **service** every `every_s` (±50%) in between, dealt from a shuffled deck so that every service is
  killed `service_kills` times or more before any is killed again.

The platform's watcher restarts whatever dies; the killer never restarts anything itself. It waits on
readiness, never on a fixed sleep: before an infrastructure kill the whole platform must be serving
(so a broker kill hits a running system, not one still coming back from the last kill), and after one
the killer waits until the killed process answers again (Kafka: a metadata request; Redis: PING) and
every service says SERVING (their gRPC health follows their Kafka and Redis connections). Service kills
may overlap (the next one may come while the last victim is still starting); how long each victim
took to serve again is measured in the background (`Kill.back_s`).

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
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from yiju_infra.local.broker import kafka_metadata_ready
from yiju_infra.local.platform import SERVICES, LocalPlatform, ServiceNotReadyError

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
    every_s: float
    duration_s: float
    broker_kills: int = 3
    redis_kills: int = 2
    service_kills: int = 1  # each service at least this many times
    seed: int = 7
    recover_timeout_s: float = 180.0
    on_kill: Any = None  # called with each Kill (progress display); None: nothing
    began: float = field(default_factory=time.monotonic)
    kills: list[Kill] = field(default_factory=list)
    _deck: list[str] = field(default_factory=list)
    _measuring: set[asyncio.Task[None]] = field(default_factory=set)

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
        """Why the broker is (not) killed, for the report."""
        broker = self.platform.broker
        if broker is None:
            return "not killed: the platform uses a shared broker it did not start"
        if not broker.durable:
            return (
                f"not killed: {broker.description} keeps its log in memory and would restart empty "
                "(data loss by construction, not a finding)"
            )
        return f"killed with SIGKILL; {broker.description} (the log survives the process)"

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
            name: {"kills_back": len(ts), "median_s": round(statistics.median(ts), 1), "max_s": round(max(ts), 1)}
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
        next_service = self._elapsed() + self._interval()
        while not stop.is_set():
            wake = min(next_service, due[0][0]) if due else next_service
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, wake - self._elapsed()))
                return
            if due and self._elapsed() >= due[0][0]:
                _, target = due.pop(0)
                await self.kill_infra(target, "submit")
                next_service = max(next_service, self._elapsed() + self._interval())
            else:
                await self.kill_service("submit")
                next_service = self._elapsed() + self._interval()

    async def catch_up(self) -> None:
        """Makes the kills still owed (`missing`) now, one after the other, each waiting on readiness."""
        while owed := self.missing():
            target = next(iter(sorted(owed, key=lambda t: (t not in INFRA_TARGETS, t))))
            if target in INFRA_TARGETS:
                await self.kill_infra(target, "catch-up")
            else:
                await self.kill_service("catch-up", only=target)
                # a service is killed only once its last victim serves again, so catch-up kills never pile up
                await self.wait_measured()

    async def wait_measured(self) -> None:
        """Waits for the background measurements of service restarts (`Kill.back_s`)."""
        if self._measuring:
            await asyncio.gather(*self._measuring, return_exceptions=True)

    async def kill_infra(self, target: str, phase: str) -> Kill | None:
        """Kills the broker or Redis once the platform serves, then waits until it serves again."""
        if target == "broker" and not self.broker_killable:
            return None
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
            log.warning("chaos: %s is back and every service serves again after %.1f s", target, kill.back_s)
        else:
            log.error(
                "chaos: %s (or a service) did not serve again within %.0f s of its kill",
                target,
                self.recover_timeout_s,
            )
        return kill

    async def kill_service(self, phase: str, only: str | None = None) -> Kill | None:
        """Kills the next service of the deck that is running (or `only`); measures its restart in the
        background."""
        alive = self.platform.pids
        if only is not None:
            if only not in alive:
                await self._process_back(only, None, time.monotonic() + self.recover_timeout_s)
            target = only
        else:
            if not self._deck:
                self._deck = self._rng.sample(SERVICES, len(SERVICES))
            running = [s for s in self._deck if s in alive]
            if not running:  # every service is still restarting: next time
                return None
            target = running[-1]
            self._deck.remove(target)
        kill = self._kill(target, phase)
        if kill is not None:
            task = asyncio.create_task(self._measure_service(kill))
            self._measuring.add(task)
            task.add_done_callback(self._measuring.discard)
        return kill

    def _kill(self, target: str, phase: str) -> Kill | None:
        pid = self.platform.pids.get(target)
        if pid is None:  # down already (restarting)
            return None
        self.platform.kill(target)
        kill = Kill(round(self._elapsed(), 2), target, pid, phase)
        self.kills.append(kill)
        log.warning("chaos: kill -9 %s (pid %s) at %.1f s [%s]", target, pid, kill.at_s, phase)
        if self.on_kill is not None:
            self.on_kill(kill)
        return kill

    async def _measure_service(self, kill: Kill) -> None:
        began = time.monotonic()
        deadline = began + self.recover_timeout_s
        if not await self._process_back(kill.target, kill.pid, deadline):
            return
        with contextlib.suppress(ServiceNotReadyError):
            await self.platform.wait_ready([kill.target], timeout=deadline - time.monotonic(), fail_fast=False)
            kill.back_s = round(time.monotonic() - began, 2)

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
                except (aioredis.ConnectionError, aioredis.TimeoutError, aioredis.BusyLoadingError, OSError):
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
