"""The tansu fallback broker (YIJU_BROKER=tansu, for machines without a JDK) still carries the flow.

The flow's own tests run on Apache Kafka; this small suite keeps the fallback working: a platform of its
own on tansu's memory storage completes an order, and after a tansu restart (which forgets every event)
the platform re-creates the topics and keeps going.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import owner_api, started, submit, wait_settled
from yiju.common.topics import ALL_TOPICS
from yiju_infra.local.broker import TansuBroker, kafka_metadata_ready
from yiju_infra.local.platform import LocalPlatform

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def tansu_platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalPlatform]:
    plat = LocalPlatform.on_free_ports(tmp_path_factory.mktemp("tansu"), broker="tansu")
    async with started(plat):
        yield plat


@pytest.fixture(scope="module")
async def tansu_api(tansu_platform: LocalPlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with owner_api(tansu_platform) as client:
        yield client


async def test_an_order_completes_on_tansu(
    tansu_platform: LocalPlatform, tansu_api: httpx.AsyncClient
) -> None:
    assert isinstance(tansu_platform.broker, TansuBroker) and not tansu_platform.broker.durable
    assert tansu_platform.service_env("payment")["YIJU_KAFKA_ENABLE_IDEMPOTENCE"] == "false"
    order = await wait_settled(tansu_api, await submit(tansu_api, "two bubble teas and a latte"), timeout=60)
    assert order["status"] == "COMPLETED"
    assert order["payment"]["captured_fen"] == order["total_fen"] > 0


async def test_a_tansu_restart_forgets_events_and_the_platform_recreates_the_topics(
    tansu_platform: LocalPlatform, tansu_api: httpx.AsyncClient
) -> None:
    await tansu_platform.restart("broker")  # memory storage: every topic and record is gone
    assert set(ALL_TOPICS) <= set(await kafka_metadata_ready(tansu_platform.bootstrap))
    order = await wait_settled(tansu_api, await submit(tansu_api, "one jasmine green tea"), timeout=90)
    assert order["status"] == "COMPLETED"


def test_tansu_is_described_with_its_storage(tmp_path: Path) -> None:
    broker = TansuBroker(21999, tmp_path, storage="memory://tansu/")
    assert broker.description == "tansu, memory storage" and not broker.durable
    assert TansuBroker(21999, tmp_path, storage="s3://bucket/").durable
