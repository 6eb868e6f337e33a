"""The load generator against a real platform: every sentence sent over HTTP, gRPC or the Kafka intake
is counted, reaches COMPLETED, and is charged once. A functional test, not a benchmark: a slow
machine makes it slower, never red (the rates are low and the timeouts generous).

The platform here is its own (synthetic users, and two payment processes sharing the consumer group,
which also exercises LocalPlatform's replicas)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.exceptions import ResponseError

from tests.conftest import platform_on
from yiju.common.catalog import load_catalog
from yiju.common.redis import create_redis
from yiju.loadgen.checks import money_check, verify_projection, wallet_spent
from yiju.loadgen.profiles import Constant
from yiju.loadgen.runner import LoadConfig, LoadRunner
from yiju_infra.local.broker import BrokerServer
from yiju_infra.local.platform import LocalPlatform

pytestmark = pytest.mark.integration
USERS = 200


@pytest.fixture(scope="module")
async def load_platform(
    tmp_path_factory: pytest.TempPathFactory, shared_kafka: BrokerServer
) -> AsyncIterator[LocalPlatform]:
    data_dir: Path = tmp_path_factory.mktemp("loadgen")
    plat = platform_on(
        shared_kafka, data_dir, extra_env={"YIJU_SYNTHETIC_USERS": str(USERS)}, replicas={"payment": 2}
    )
    try:
        await plat.start(ready_timeout=180)
        yield plat
    finally:
        await plat.stop_all()


@pytest.mark.parametrize("via", ["http", "grpc", "kafka"])
async def test_fifty_sentences_are_sent_completed_and_counted(load_platform: LocalPlatform, via: str) -> None:
    settings = load_platform.settings()
    catalog = load_catalog(settings.catalog_dir, USERS)
    config = LoadConfig(
        via=via,
        users=USERS,
        api_url=load_platform.api_url,
        grpc_target=f"127.0.0.1:{load_platform.ports.grpc}",
        # On Kafka the watcher may start at the end of its topics (their end offsets are right); the
        # Kafka variant checks that it misses nothing of its own run that way.
        watch_from_end=via == "kafka",
    )
    redis = create_redis(url=load_platform.redis_url)
    try:
        async with LoadRunner(settings, catalog, config) as runner:
            before = await wallet_spent(redis, runner.pool.ids)
            phase = await runner.run_phase(Constant(20, 2.5))
            assert await runner.drain(timeout_s=180), f"{runner.in_flight} sentences never settled"
            result = runner.phase_result(phase, final=True)
            projection = await verify_projection(redis, runner.tracks(phase), wait_s=60)
            money = money_check(before, await wallet_spent(redis, runner.pool.ids), runner.tracks(phase))
    finally:
        await redis.aclose()
    assert result["offered"] == 50
    assert result["completed"] == 50, result
    assert (result["lost"], result["duplicated"], result["failed"]) == (0, 0, 0), result
    assert result["latency_ms"]["p50"] > 0 and result["pipeline_latency_ms"]["p50"] > 0
    assert projection["completed"] == projection["checked"] == 50, projection
    assert money["ok"] and money["captured_fen"] > 0, money


async def test_auto_pipelined_redis_keeps_each_callers_result_and_error(load_platform: LocalPlatform) -> None:
    """Concurrent callers share round trips, but each gets its own reply or error; explicit pipelines
    keep their order and error handling; transactions stay atomic; scripts survive SCRIPT FLUSH."""
    redis = create_redis(url=load_platform.redis_url)
    try:
        await redis.set("lgtest:s", "text")
        results = await asyncio.gather(
            redis.incr("lgtest:s"), redis.set("lgtest:a", 1), redis.get("lgtest:a"), return_exceptions=True
        )
        assert isinstance(results[0], ResponseError) and results[1:] == [True, "1"]
        async with redis.pipeline(transaction=False) as pipe:
            pipe.set("lgtest:b", 2).incr("lgtest:s").get("lgtest:b")
            with pytest.raises(ResponseError, match="Command # 2"):
                await pipe.execute()
        async with redis.pipeline(transaction=False) as pipe:
            pipe.set("lgtest:b", 3).incr("lgtest:s").get("lgtest:b")
            first, error, last = await pipe.execute(raise_on_error=False)
        assert (first, last) == (True, "3") and isinstance(error, ResponseError)
        async with redis.pipeline(transaction=True) as pipe:
            pipe.set("lgtest:c", 1).incr("lgtest:c")
            assert await pipe.execute() == [True, 2]
        script = redis.register_script("return redis.call('GET', KEYS[1])")
        assert await asyncio.gather(*(script(keys=["lgtest:b"]) for _ in range(5))) == ["3"] * 5
        await redis.script_flush()
        assert await asyncio.gather(*(script(keys=["lgtest:a"]) for _ in range(3))) == ["1"] * 3
    finally:
        await redis.delete("lgtest:s", "lgtest:a", "lgtest:b", "lgtest:c")
        await redis.aclose()
