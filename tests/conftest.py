"""Shared fixtures: the demo catalog, one Apache Kafka and one scratch Redis for the whole test session.

Test platforms share that Kafka (`shared_kafka`) rather than starting a JVM each: each platform gets
its own topic and consumer-group prefix (LocalPlatform's namespace), so they never see each other's
events. Tests whose subject is the broker itself (start-up, restart, kill -9, the tansu fallback) start
their own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from yiju.common.catalog import Catalog, load_catalog
from yiju.common.redis import create_redis
from yiju_infra.local.broker import BrokerServer, create_broker
from yiju_infra.local.platform import LocalPlatform
from yiju_infra.local.processes import free_port
from yiju_infra.local.redis_server import RedisServer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(REPO / "catalog")


@pytest.fixture(scope="session")
async def shared_kafka(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BrokerServer]:
    """One Apache Kafka (KRaft, one node) for every test platform of the session."""
    data_dir = tmp_path_factory.mktemp("shared-kafka")
    port = free_port()
    broker = create_broker("kafka", port, data_dir, controller_port=free_port(avoid=[port]))
    try:
        await broker.start(timeout=120)
        yield broker
    finally:
        await broker.stop()


@pytest.fixture(scope="session")
async def scratch_redis_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RedisServer]:
    """One Redis of the session for tests that need Redis but no platform (scripts, races, handlers)."""
    server = RedisServer(free_port(), tmp_path_factory.mktemp("scratch-redis"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def scratch_redis(scratch_redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A client of the session's scratch Redis, emptied (and its stream settings reset) for each test."""
    client = create_redis(url=scratch_redis_server.url)
    await client.flushdb()
    await client.config_set("stream-node-max-entries", 100)
    try:
        yield client
    finally:
        await client.aclose()


def platform_on(kafka: BrokerServer, data_dir: Path, **kwargs: Any) -> LocalPlatform:
    """A platform on free ports that uses the session's Kafka under a namespace of its own."""
    return LocalPlatform.on_free_ports(data_dir, kafka_bootstrap=kafka.bootstrap, **kwargs)
