"""The campaign subsidy: a budget in Redis, decremented atomically, never overspent.

Keys share the campaign's hash tag so the scripts also run on a Redis Cluster.
"""

from __future__ import annotations

from pathlib import Path

from redis.asyncio.client import Redis

from yiju.common.catalog import Campaign
from yiju.common.metrics import SUBSIDY_BUDGET_LEFT
from yiju.common.redis import load_script

_LUA = Path(__file__).parent / "lua"


def budget_key(campaign_id: str) -> str:
    return f"subsidy:{{{campaign_id}}}:budget"


def ledger_key(campaign_id: str) -> str:
    return f"subsidy:{{{campaign_id}}}:ledger"


class Subsidies:
    def __init__(self, redis: Redis, campaign: Campaign | None) -> None:
        self.redis = redis
        self.campaign = campaign
        self._reserve = load_script(redis, _LUA / "subsidy_reserve.lua")
        self._release = load_script(redis, _LUA / "subsidy_release.lua")

    async def initialise(self) -> None:
        """Seeds the budget once; a restart never resets what has been spent."""
        if self.campaign is not None:
            await self.redis.set(budget_key(self.campaign.id), self.campaign.budget_fen, nx=True)
            await self.budget_left()

    def _keys(self, user_id: str, order_id: str) -> list[str]:
        assert self.campaign is not None
        cid = self.campaign.id
        return [
            budget_key(cid),
            f"subsidy:{{{cid}}}:uses:{user_id}",
            f"subsidy:{{{cid}}}:order:{order_id}",
            ledger_key(cid),
        ]

    async def reserve(self, order_id: str, user_id: str, goods_total_fen: int) -> int:
        """The subsidy for this order (0 when it does not qualify); the same answer every time it is asked."""
        if self.campaign is None or goods_total_fen < self.campaign.min_order_fen:
            return 0
        granted, left = await self._reserve(
            keys=self._keys(user_id, order_id),
            args=[self.campaign.discount_fen, self.campaign.per_user_max_uses, order_id, user_id],
        )
        SUBSIDY_BUDGET_LEFT.labels(self.campaign.id).set(int(left))
        return int(granted)

    async def release(self, order_id: str, user_id: str) -> int:
        if self.campaign is None:
            return 0
        return int(await self._release(keys=self._keys(user_id, order_id), args=[order_id, user_id]))

    async def budget_left(self) -> int:
        if self.campaign is None:
            return 0
        left = int(await self.redis.get(budget_key(self.campaign.id)) or 0)
        SUBSIDY_BUDGET_LEFT.labels(self.campaign.id).set(left)
        return left
