"""Two gateway replicas share planning's model requests (the chart's shape): when the one running a call
is killed, the other replica or its restarted successor answers the request as lost at once, without
calling the model again, and the order completes by the rules fallback long before its deadline.
Through the real broker, with all five services."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import platform_on
from tests.integration.conftest import owner_api, redis_of, started
from tests.integration.test_model_path_flow import (
    SlowModel,
    model_path_env,
    serve_slow_model,
    statuses,
    submit,
    wait_status,
)
from yiju.common.orders import TERMINAL
from yiju.model_gateway.kafka_worker import claim_key
from yiju_infra.local.broker import BrokerServer
from yiju_infra.local.platform import LocalPlatform

pytestmark = pytest.mark.integration

DEADLINE_S = 120  # far beyond what the lost-call answer needs: ending before it proves that path


model = pytest.fixture(scope="module", name="model")(serve_slow_model)  # one for this module


@pytest.fixture(scope="module")
async def platform(
    tmp_path_factory: pytest.TempPathFactory, shared_kafka: BrokerServer, model: SlowModel
) -> AsyncIterator[LocalPlatform]:
    plat = platform_on(
        shared_kafka,
        tmp_path_factory.mktemp("gateway-replicas"),
        replicas={"model_gateway": 2},
        extra_env=model_path_env(model, DEADLINE_S),
    )
    async with started(plat):
        yield plat


@pytest.fixture(scope="module")
async def api(platform: LocalPlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with owner_api(platform) as client:
        yield client


async def calls_in_flight(platform: LocalPlatform, name: str) -> float:
    """The replica's `yiju_gateway_model_in_flight` gauge."""
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        text = (await client.get(f"http://127.0.0.1:{platform.metrics_port(name)}/metrics")).text
    for line in text.splitlines():
        if line.startswith("yiju_gateway_model_in_flight "):
            return float(line.split()[1])
    return 0.0


async def test_the_replica_running_a_call_is_killed_and_the_call_is_answered_as_lost(
    api: httpx.AsyncClient, platform: LocalPlatform, model: SlowModel
) -> None:
    text = "hang on, a latte for the replicas"
    order_id = await submit(api, text)
    await wait_status(api, order_id, {"AWAITING_MODEL"}, 30)
    await model.started_event("hang").wait()
    replicas = platform.instances("model_gateway")
    assert replicas == ["model_gateway", "model_gateway#2"]
    running = [name for name in replicas if await calls_in_flight(platform, name) >= 1]
    assert len(running) == 1, running  # one replica holds the call; the other does not
    killed_at = time.monotonic()
    platform.kill(running[0])
    order = await wait_status(api, order_id, set(TERMINAL), DEADLINE_S + 60)
    assert time.monotonic() - killed_at < DEADLINE_S, "the order waited out its deadline"
    assert order["status"] == "COMPLETED", order
    assert "CANCELLED" not in statuses(order)
    assert order["payment"]["captured_fen"] == order["total_fen"]
    assert model.calls[text] == 1, "the sentence went to the model twice"
    async with redis_of(platform) as redis:
        claim = await redis.hgetall(claim_key(order_id))
    assert claim["lost_replica"] == claim["replica"] and claim["calls"] == "1", claim
