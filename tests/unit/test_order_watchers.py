"""Order watchers have a Redis pool of their own and a cap (issue 14, item 6): a flood of watchers during
a Redis hiccup never takes the consumers' connections, and the watcher over the cap is told to come back
(HTTP 503 with Retry-After) instead of queueing for a connection."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio.client import Redis

from yiju.common.auth import issue_token
from yiju.common.catalog import Catalog
from yiju.common.redis import create_redis, create_watcher_redis
from yiju.common.settings import Settings
from yiju.intent.edge import Edge
from yiju.intent.health import PlatformHealth
from yiju.intent.http_api import create_app
from yiju.intent.ingest import Ingest
from yiju.intent.orders import OrderActions
from yiju.intent.store import OrderStore, order_key
from yiju.intent.watchers import OrderWatchers, WatchersFull
from yiju_infra.local.processes import free_port
from yiju_infra.local.redis_server import RedisServer

LIMIT = 6
FLOOD = 40
CONSUMER_CONNECTIONS = 4


@pytest.fixture(scope="module")
async def redis_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RedisServer]:
    server = RedisServer(free_port(), Path(tmp_path_factory.mktemp("watchers-redis")))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def wait_until(what: str, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def in_use(redis: Redis) -> int:
    return len(redis.connection_pool._in_use_connections)  # type: ignore[attr-defined]


@contextlib.contextmanager
def hiccup(server: RedisServer):  # type: ignore[no-untyped-def]
    """Redis stops answering (connections open, nothing comes back), then resumes."""
    pid = server.process.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def open_order(redis: Redis, order_id: str) -> None:
    await OrderStore(redis).create(order_id, "u-1001", "two bubble teas", "en", "2026-01-01T00:00:00Z", "")


async def test_a_flood_of_watchers_in_a_redis_hiccup_leaves_the_consumers_pool_alone(
    redis_server: RedisServer,
) -> None:
    consumers = create_redis(url=redis_server.url, max_connections=CONSUMER_CONNECTIONS)
    watchers = OrderWatchers(create_watcher_redis(url=redis_server.url, max_connections=LIMIT + 2), LIMIT)
    await open_order(consumers, "ord_flood")
    streams: list[asyncio.Task[Any]] = []

    async def watch(lease: Any) -> None:
        async for _ in lease.stream("ord_flood", poll_s=0.2):
            pass

    try:
        with hiccup(redis_server):
            refused = 0
            for _ in range(FLOOD):  # every client of a page reconnecting at once
                try:
                    streams.append(asyncio.create_task(watch(watchers.admit())))
                except WatchersFull as exc:
                    refused += 1
                    assert exc.retry_after_s > 0
            assert (len(streams), refused) == (LIMIT, FLOOD - LIMIT)
            held = lambda: in_use(watchers.redis) >= LIMIT  # noqa: E731
            await wait_until("the admitted watchers to hold connections", held)
            assert in_use(consumers) == 0  # not one of the consumers' connections went to a watcher
        # Redis is back and the watchers subscribe and keep their connections: the consumers still have
        # every one of theirs, at once (on a shared pool of 4 they would wait 10 s for one, then fail).
        await wait_until("the watchers to read the order", lambda: in_use(watchers.redis) >= LIMIT)
        started = time.monotonic()
        replies = await asyncio.wait_for(
            asyncio.gather(*(consumers.hget(order_key("ord_flood"), "status") for _ in range(20))), 5.0
        )
        assert set(replies) == {"ACCEPTED"} and time.monotonic() - started < 5.0
        assert watchers.active == LIMIT
    finally:
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
        await watchers.close()
        await consumers.aclose()
    assert watchers.active == 0  # every slot came back with its stream


async def test_a_slot_comes_back_when_a_stream_ends_or_never_starts(redis_server: RedisServer) -> None:
    redis = create_watcher_redis(url=redis_server.url, max_connections=4)
    watchers = OrderWatchers(redis, limit=1)
    try:
        lease = watchers.admit()
        with pytest.raises(WatchersFull):
            watchers.admit()
        lease.release()
        lease.release()  # idempotent: a response's background task and the stream may both release
        assert watchers.active == 0
        async for _ in watchers.admit().stream("ord_missing"):  # no such order: the stream just ends
            pass
        assert watchers.active == 0
    finally:
        await watchers.close()


class NoPublisher:
    async def publish(self, *_: Any, **__: Any) -> None:
        raise AssertionError("nothing is published by watching")


@pytest.fixture
async def api(
    redis_server: RedisServer, catalog: Catalog
) -> AsyncIterator[tuple[httpx.AsyncClient, OrderWatchers, Callable[[], Awaitable[None]], str]]:
    secret = "watchers-test-secret-of-32-bytes-or-more"
    settings = Settings(env="local", redis_url=redis_server.url, jwt_secret=secret)
    redis = create_redis(settings)
    store = OrderStore(redis)
    publisher: Any = NoPublisher()
    ingest = Ingest(catalog, redis, store, publisher, settings)

    async def alive() -> bool:
        return True

    health = PlatformHealth(settings, alive)
    watchers = OrderWatchers(create_watcher_redis(settings, max_connections=4), limit=1, retry_after_s=3)
    app = create_app(ingest, OrderActions(store, publisher), health, Edge(redis, settings), watchers)
    token = issue_token("u-1001", settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://intent", headers={"Authorization": f"Bearer {token}"}
    ) as client:
        yield client, watchers, lambda: open_order(redis, "ord_http"), "ord_http"
    await health.close()
    await watchers.close()
    await redis.aclose()


async def test_the_watcher_over_the_cap_gets_503_with_retry_after(
    api: tuple[httpx.AsyncClient, OrderWatchers, Callable[[], Awaitable[None]], str],
) -> None:
    client, watchers, create, order_id = api
    await create()
    held = watchers.admit()  # the one slot is taken by a watcher that is still streaming
    try:
        response = await client.get(f"/v1/orders/{order_id}/events")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "3"
        assert response.json()["error"]["code"] == "too_many_watchers"
    finally:
        held.release()
    assert watchers.active == 0
