"""The campaign subsidy: a budget in Redis, decremented atomically, never overspent.

Keys share the campaign's hash tag so the scripts also run on a Redis Cluster. Each order's grant
(`subsidy:{campaign}:order:<order>`) holds the amount granted, '0' (not granted) or 'released' (given
back, or released before any reserve: a tombstone, so a reserve that comes after the release grants
nothing, whichever planning replica handles which event). Grants expire after `subsidy_grant_ttl_s`.

Bounded: the ledger stream (`subsidy:{campaign}:ledger`, one entry per grant or release) is trimmed to
about `ledger_maxlen` entries (`subsidy_ledger_maxlen`, XADD MAXLEN ~). Each entry carries a sequence
number (`subsidy:{campaign}:ledger_seq`) and the budget left and the user's use count after it, so
`yiju reconcile` replays what is kept exactly (`yiju.common.ledger_replay.replay_subsidy_ledger`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from redis.asyncio.client import Redis

from yiju.common.catalog import Campaign
from yiju.common.metrics import SUBSIDY_BUDGET_LEFT
from yiju.common.redis import load_script

_LUA = Path(__file__).parent / "lua"
DEFAULT_GRANT_TTL_S = 30 * 24 * 3600  # Settings.subsidy_grant_ttl_s
DEFAULT_LEDGER_MAXLEN = 100_000  # Settings.subsidy_ledger_maxlen


def budget_key(campaign_id: str) -> str:
    return f"subsidy:{{{campaign_id}}}:budget"


def ledger_key(campaign_id: str) -> str:
    return f"subsidy:{{{campaign_id}}}:ledger"


def ledger_seq_key(campaign_id: str) -> str:
    return f"subsidy:{{{campaign_id}}}:ledger_seq"


def grant_key(campaign_id: str, order_id: str) -> str:
    return f"subsidy:{{{campaign_id}}}:order:{order_id}"


def expired_grants(
    ledger: Iterable[tuple[str, Mapping[str, str]]],
    grant_values: Mapping[str, str | None],
    now_ms: int,
    ttl_s: int,
) -> set[str]:
    """Orders whose grant key is gone because it expired: the last ledger entry for the order (whose id
    is the time of the script that wrote the key) is at least `ttl_s` old. A key missing earlier is
    not expired, and stays a difference for `yiju reconcile`."""
    last: dict[str, int] = {}
    for entry_id, fields in ledger:
        last[fields.get("order", "")] = int(entry_id.split("-", 1)[0])
    cutoff = now_ms - ttl_s * 1000
    return {
        order
        for order, value in grant_values.items()
        if value is None and order in last and last[order] <= cutoff
    }


class Subsidies:
    def __init__(
        self,
        redis: Redis,
        campaign: Campaign | None,
        grant_ttl_s: int = DEFAULT_GRANT_TTL_S,
        *,
        ledger_maxlen: int = DEFAULT_LEDGER_MAXLEN,
    ) -> None:
        self.redis = redis
        self.campaign = campaign
        self.grant_ttl_s = grant_ttl_s
        self.ledger_maxlen = ledger_maxlen  # 0 keeps every entry
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
            grant_key(cid, order_id),
            ledger_key(cid),
            ledger_seq_key(cid),
        ]

    async def reserve(self, order_id: str, user_id: str, goods_total_fen: int) -> int:
        """The subsidy for this order (0 when it does not qualify); the same answer every time it is asked."""
        if self.campaign is None or goods_total_fen < self.campaign.min_order_fen:
            return 0
        granted, left = await self._reserve(
            keys=self._keys(user_id, order_id),
            args=[
                self.campaign.discount_fen,
                self.campaign.per_user_max_uses,
                order_id,
                user_id,
                self.grant_ttl_s,
                self.ledger_maxlen,
            ],
        )
        SUBSIDY_BUDGET_LEFT.labels(self.campaign.id).set(int(left))
        return int(granted)

    async def release(self, order_id: str, user_id: str) -> int:
        """Gives the order's grant back (once); the amount given back. A release that finds no grant
        leaves a tombstone, so a reserve for the order that arrives later grants nothing."""
        if self.campaign is None:
            return 0
        return int(
            await self._release(
                keys=self._keys(user_id, order_id),
                args=[order_id, user_id, self.grant_ttl_s, self.ledger_maxlen],
            )
        )

    async def budget_left(self) -> int:
        if self.campaign is None:
            return 0
        left = int(await self.redis.get(budget_key(self.campaign.id)) or 0)
        SUBSIDY_BUDGET_LEFT.labels(self.campaign.id).set(left)
        return left
