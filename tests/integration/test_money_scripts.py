"""The Redis scripts behind money: subsidy budget, wallet holds and captures. Real Redis, real races."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from yiju.common.catalog import Campaign, Catalog
from yiju.common.redis import create_redis
from yiju.payment.wallet import Wallets, wallet_key
from yiju.planning.subsidy import Subsidies, budget_key
from yiju_infra.local.platform import LocalPlatform

pytestmark = pytest.mark.integration


@pytest.fixture
async def redis(platform: LocalPlatform) -> AsyncIterator[aioredis.Redis]:
    """A scratch database on the platform's Redis: these wallets and campaigns are made up, and must not
    show up in the platform's own books (yiju reconcile reads database 0)."""
    client = create_redis(url=platform.redis_url.rsplit("/", 1)[0] + "/9")
    yield client
    await client.flushdb()
    await client.aclose()


def _campaign(budget_fen: int) -> Campaign:
    return Campaign(
        id=f"test-{uuid.uuid4().hex[:8]}",
        name="test",
        min_order_fen=3000,
        discount_fen=1000,
        budget_fen=budget_fen,
        per_user_max_uses=3,
    )


async def test_budget_is_never_overspent_under_concurrency(redis: aioredis.Redis) -> None:
    subsidies = Subsidies(redis, _campaign(budget_fen=25_000))  # room for 25 grants
    await subsidies.initialise()
    grants = await asyncio.gather(*(subsidies.reserve(f"o{i}", f"user{i}", 5000) for i in range(200)))
    assert sum(grants) == 25_000
    assert grants.count(1000) == 25
    assert await subsidies.budget_left() == 0


async def test_a_user_gets_the_subsidy_at_most_three_times_and_each_order_once(redis: aioredis.Redis) -> None:
    subsidies = Subsidies(redis, _campaign(budget_fen=10**9))
    await subsidies.initialise()
    first = [await subsidies.reserve(f"o{i}", "u1", 5000) for i in range(5)]
    assert first == [1000, 1000, 1000, 0, 0]
    assert await subsidies.reserve("o0", "u1", 5000) == 1000  # asking again gives the same answer
    assert await subsidies.reserve("small", "u2", 2999) == 0  # below the threshold
    assert await subsidies.release("o0", "u1") == 1000
    assert await subsidies.release("o0", "u1") == 0  # released once
    assert await subsidies.reserve("o9", "u1", 5000) == 1000  # the released use is available again
    assert int(await redis.get(budget_key(subsidies.campaign.id))) == 10**9 - 3000


async def test_an_order_is_authorized_and_captured_at_most_once(
    redis: aioredis.Redis, catalog: Catalog
) -> None:
    wallets = Wallets(redis)
    user = f"wallet-test-{uuid.uuid4().hex[:6]}"
    await redis.hset(wallet_key(user), mapping={"balance": 10_000, "held": 0, "spent": 0})
    results = await asyncio.gather(*(wallets.authorize(user, "ord-a", 4200, 10**9) for _ in range(20)))
    assert {r.status for r in results} == {"AUTHORIZED"}
    assert await wallets.balance(user) == {"balance": 5800, "held": 4200, "spent": 0}
    captures = await asyncio.gather(*(wallets.capture(user, "ord-a") for _ in range(20)))
    assert [c.status for c in captures].count("CAPTURED") == 20  # same answer every time...
    assert await wallets.balance(user) == {"balance": 5800, "held": 0, "spent": 4200}  # ...money moved once
    assert len(await redis.xrange(f"ledger:{{{user}}}")) == 2


async def test_declines_and_voids_release_money(redis: aioredis.Redis) -> None:
    wallets = Wallets(redis)
    user = f"wallet-test-{uuid.uuid4().hex[:6]}"
    await redis.hset(wallet_key(user), mapping={"balance": 5_000, "held": 0, "spent": 0})
    assert (await wallets.authorize(user, "big", 6000, 10**9)).status == "DECLINED"
    assert (await wallets.authorize(user, "ok", 3000, 10**9)).status == "AUTHORIZED"
    assert (await wallets.void(user, "ok")).status == "VOIDED"
    assert (await wallets.void(user, "ok")).status == "VOIDED"
    assert (await wallets.capture(user, "ok")).status == "VOIDED"  # a voided hold can't be captured
    assert await wallets.balance(user) == {"balance": 5000, "held": 0, "spent": 0}
    assert (await wallets.authorize("nobody", "x", 1, 10**9)).status == "NO_WALLET"


async def test_the_daily_limit_is_checked_atomically_with_the_hold(redis: aioredis.Redis) -> None:
    wallets = Wallets(redis)
    user = f"wallet-test-{uuid.uuid4().hex[:6]}"
    await redis.hset(wallet_key(user), mapping={"balance": 100_000, "held": 0, "spent": 0})
    results = await asyncio.gather(*(wallets.authorize(user, f"o{i}", 1000, 5000) for i in range(20)))
    assert [r.status for r in results].count("AUTHORIZED") == 5
    assert {r.status for r in results} == {"AUTHORIZED", "OVER_DAILY_LIMIT"}
    first = next(i for i, r in enumerate(results) if r.status == "AUTHORIZED")
    assert (await wallets.void(user, f"o{first}")).status == "VOIDED"  # a void gives the allowance back
    assert (await wallets.authorize(user, "late", 1000, 5000)).status == "AUTHORIZED"
