"""Redis connections and the Lua scripts that make state transitions atomic.

`create_redis` returns a client that pipelines automatically: the simple commands and scripts that
concurrent handlers issue within the same event-loop turn leave together, as one non-transactional
pipeline on one connection, and each caller gets its own reply (or its own error). Nothing changes
for a caller: every command is still sent, executed and answered on its own, in the order each
coroutine awaits them; only the round trips and the connection-pool traffic are shared. Commands that
hold or change a connection's state (blocking pops, pub/sub, WATCH/MULTI, SELECT, CLIENT, PING for
health checks) keep going one at a time. An explicit non-transactional `pipeline()` joins the same
shared pipeline as one contiguous group (it never promised atomicity, only one round trip; it keeps
its order and its error handling); transactions (MULTI/EXEC, WATCH) run on their own connection as
before. A script called inside an explicit pipeline is sent as EVAL, so no SCRIPT EXISTS round trip
precedes every such pipeline.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline, Redis
from redis.commands.core import AsyncScript
from redis.connection import HiredisRespSerializer
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.utils import HIREDIS_AVAILABLE

from yiju.common.metrics import REDIS_COMMANDS, REDIS_ROUND_TRIPS
from yiju.common.settings import Settings

# Redis itself unreachable or not ready (the edge answers 503 for these).
REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (
    aioredis.ConnectionError,
    aioredis.TimeoutError,
    aioredis.BusyLoadingError,
)
INFRA_ERRORS: tuple[type[BaseException], ...] = (*REDIS_UNAVAILABLE, OSError)

# Commands that may share a pipeline with other callers' commands: single-key or multi-key data
# commands and scripts, none of which blocks or changes the connection's state.
_AUTO_PIPELINED = (
    "GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX MGET MSET DEL UNLINK EXISTS EXPIRE PEXPIRE "
    "EXPIREAT PEXPIREAT TTL PTTL PERSIST TYPE INCR INCRBY INCRBYFLOAT DECR DECRBY APPEND STRLEN "
    "HGET HSET HSETNX HMGET HMSET HGETALL HDEL HINCRBY HINCRBYFLOAT HEXISTS HLEN HKEYS HVALS "
    "LPUSH RPUSH LPOP RPOP LRANGE LLEN LTRIM LINDEX LREM SADD SREM SMEMBERS SISMEMBER SMISMEMBER "
    "SCARD ZADD ZREM ZSCORE ZMSCORE ZCARD ZCOUNT ZRANGE ZRANGEBYSCORE ZREVRANGE ZREVRANGEBYSCORE "
    "ZINCRBY ZRANK ZREMRANGEBYSCORE XADD XLEN XRANGE XREVRANGE XTRIM EVAL EVALSHA EVAL_RO "
    "EVALSHA_RO PUBLISH"
)
AUTO_PIPELINED: frozenset[str] = frozenset(_AUTO_PIPELINED.split())


class Script(AsyncScript):
    """A Lua script: EVALSHA (loaded on NOSCRIPT) on the client, EVAL inside an explicit pipeline."""

    async def __call__(
        self,
        keys: Sequence[Any] | None = None,
        args: Iterable[Any] | None = None,
        client: Any = None,
    ) -> Any:
        if isinstance(client, Pipeline):
            keys = list(keys or ())
            return client.execute_command("EVAL", self.script, len(keys), *keys, *(args or ()))
        return await super().__call__(keys, args, client)


# Set while a shared pipeline's replies are read under one deadline for the whole pipeline.
_WHOLE_PIPELINE_DEADLINE: ContextVar[bool] = ContextVar("yiju_redis_pipeline_deadline", default=False)


class HiredisPackingConnection(aioredis.Connection):
    """A TCP connection that packs commands with hiredis (C) like redis-py's blocking client does; the
    asyncio client's pure-Python packer costs more than the rest of a pipelined command.

    Inside a shared pipeline it reads replies without a timeout context of its own per reply (redis-py
    opens one for every reply: ~10 % of a consumer's CPU); the pipeline has one deadline instead."""

    _packer = HiredisRespSerializer()

    def pack_command(self, *args: Any) -> list[bytes]:
        REDIS_COMMANDS.inc()
        return self._packer.pack(*args)

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        REDIS_ROUND_TRIPS.inc()  # one write per command or per pipeline: the per-sentence budget's count
        await super().send_packed_command(command, check_health)

    async def read_response(
        self,
        disable_decoding: bool = False,
        timeout: float | None = None,
        *,
        disconnect_on_error: bool = True,
        push_request: bool | None = False,
    ) -> Any:
        if timeout is None and _WHOLE_PIPELINE_DEADLINE.get():
            timeout = math.inf  # redis-py: no per-read timeout; the caller's deadline applies
        return await super().read_response(
            disable_decoding, timeout, disconnect_on_error=disconnect_on_error, push_request=push_request
        )


class JoiningPipeline(Pipeline):
    """An explicit non-transactional pipeline whose commands join the client's shared pipeline."""

    shared: AutoPipelineRedis | None = None

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        shared = self.shared
        if (
            shared is None
            or self.is_transaction
            or self.explicit_transaction
            or self.watching
            or self.scripts
        ):
            return await super().execute(raise_on_error)
        stack = list(self.command_stack)
        if not stack:
            return []
        try:
            results = await shared.queue_group(stack)
        finally:
            await self.reset()
        for result in results:  # a failed connection fails the whole pipeline, as before
            if isinstance(result, BaseException) and not isinstance(result, ResponseError):
                raise result
        if raise_on_error:
            self.raise_first_error(stack, results)
        return results


class AutoPipelineRedis(Redis):
    """A Redis client that batches the commands issued in one event-loop turn into one pipeline."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queued: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]] = []
        self._flushing: set[asyncio.Task[None]] = set()
        self.pipelined_commands = 0
        self.pipelines_sent = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if args[0] not in AUTO_PIPELINED or self.connection is not None or self.single_connection_client:
            return await super().execute_command(*args, **options)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queued.append((args, options, future))
        if len(self._queued) == 1:
            loop.call_soon(self._flush_queued)
        return await future

    def register_script(self, script: Any) -> Script:
        return Script(self, script)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = JoiningPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        if not transaction:
            pipe.shared = self
        return pipe

    async def queue_group(self, commands: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
        """Queues commands contiguously for the next shared pipeline; their results (or errors), in order."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        first = not self._queued
        self._queued.extend((args, options, f) for (args, options), f in zip(commands, futures, strict=True))
        if first:
            loop.call_soon(self._flush_queued)
        return list(await asyncio.gather(*futures, return_exceptions=True))

    def _flush_queued(self) -> None:
        batch, self._queued = self._queued, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    async def _send(self, batch: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]]) -> None:
        try:
            if len(batch) == 1:
                args, options, _ = batch[0]
                results: list[Any] = [await super().execute_command(*args, **options)]
            else:
                pipe = Pipeline(self.connection_pool, self.response_callbacks, False, None)
                for args, options, _ in batch:
                    pipe.execute_command(*args, **options)
                results = await self._execute_under_one_deadline(pipe)
                self.pipelines_sent += 1
                self.pipelined_commands += len(batch)
        except BaseException as exc:  # the connection failed: every caller in the batch gets the error
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if not future.done():
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def _execute_under_one_deadline(self, pipe: Pipeline) -> list[Any]:
        """Runs the pipeline with one socket-timeout deadline for all its replies. On expiry the read is
        cancelled, which makes redis-py drop the connection (its replies would be out of step), and
        every caller gets Redis' TimeoutError. The pipeline is not sent again: its commands may have
        run, and the callers (a consumer rewinding its batch) decide what a retry means."""
        deadline = self.connection_pool.connection_kwargs.get("socket_timeout")
        token = _WHOLE_PIPELINE_DEADLINE.set(deadline is not None)
        try:
            async with asyncio.timeout(deadline):
                return await pipe.execute(raise_on_error=False)
        except TimeoutError as exc:  # asyncio's, from the deadline (redis-py's own is another class)
            raise RedisTimeoutError(f"Redis pipeline timed out after {deadline} s") from exc
        finally:
            _WHOLE_PIPELINE_DEADLINE.reset(token)


def create_redis(
    settings: Settings | None = None, url: str | None = None, max_connections: int = 64
) -> Redis:
    """A client whose pool waits for a free connection instead of failing when many handlers run at once,
    and which pipelines concurrent callers' commands automatically (see the module's docstring)."""
    url = url or (settings.redis_url if settings else "redis://127.0.0.1:6379/0")
    fast = (
        {"connection_class": HiredisPackingConnection}
        if HIREDIS_AVAILABLE and url.startswith("redis://")
        else {}
    )
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        **fast,
        decode_responses=True,
        health_check_interval=10,
        socket_timeout=5,
        socket_connect_timeout=5,
        retry_on_timeout=True,
        max_connections=max_connections,
        timeout=10,
    )
    return AutoPipelineRedis(connection_pool=pool)


def load_script(redis: Redis, path: Path) -> AsyncScript:
    """Registers a Lua script file; it is loaded on first use and again after NOSCRIPT."""
    return Script(redis, path.read_text())


def create_watcher_redis(
    settings: Settings | None = None,
    url: str | None = None,
    *,
    max_connections: int = 64,
    wait_s: float = 2.0,
) -> Redis:
    """A client on a pool of its own for long-lived readers (the intent service's order watchers, which
    hold one pub/sub connection each for as long as they watch). However many of them there are, and
    whatever Redis does, they can never take the connections the consumers' pool (`create_redis`) has.
    The pool waits at most `wait_s` for a free connection, then raises ConnectionError."""
    url = url or (settings.redis_url if settings else "redis://127.0.0.1:6379/0")
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        health_check_interval=10,
        socket_timeout=5,
        socket_connect_timeout=2,
        max_connections=max_connections,
        timeout=wait_s,
    )
    return Redis(connection_pool=pool)
