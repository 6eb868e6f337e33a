"""The built-in wallet ledger in Redis. Every money movement is keyed by order id and happens once.

Keys carry the user's hash tag, so each script touches one Redis Cluster slot. Bounded: the ledger
stream is trimmed to about `ledger_maxlen` entries (each entry carries the wallet's totals after it, so
what is kept still proves the wallet), and a payment record expires `record_ttl_s` after it settles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from redis.asyncio.client import Redis

from yiju.common.catalog import Catalog
from yiju.common.mandates import daily_key, spend_day
from yiju.common.redis import load_script

_LUA = Path(__file__).parent / "lua"
OPEN_ACCOUNTS_CHUNK = 1000  # users per pipeline when opening wallets


def wallet_key(user_id: str) -> str:
    return f"wallet:{{{user_id}}}"


def payment_key(user_id: str, order_id: str) -> str:
    return f"payment:{{{user_id}}}:{order_id}"


def ledger_key(user_id: str) -> str:
    return f"ledger:{{{user_id}}}"


@dataclass(frozen=True)
class Movement:
    status: str
    amount_fen: int
    authorization_id: str = ""


MONEY_FIELDS = ("opening", "balance", "held", "spent")


class Wallets:
    def __init__(
        self, redis: Redis, *, ledger_maxlen: int = 10_000, record_ttl_s: int = 30 * 24 * 3600
    ) -> None:
        self.redis = redis
        self.ledger_maxlen = ledger_maxlen
        self.record_ttl_s = record_ttl_s
        self._authorize = load_script(redis, _LUA / "authorize.lua")
        self._settle = load_script(redis, _LUA / "settle.lua")

    async def open_accounts(self, catalog: Catalog) -> None:
        """Opens each catalog user's wallet with its starting balance, once (restarts keep balances).
        Pipelined in chunks, so tens of thousands of (synthetic) users neither build one huge request
        nor hold the event loop for the whole time."""
        users = list(catalog.users.values())
        for start in range(0, len(users), OPEN_ACCOUNTS_CHUNK):
            async with self.redis.pipeline(transaction=False) as pipe:
                for user in users[start : start + OPEN_ACCOUNTS_CHUNK]:
                    key = wallet_key(user.id)
                    pipe.hsetnx(key, "balance", user.wallet_fen)
                    pipe.hsetnx(key, "opening", user.wallet_fen)
                    pipe.hsetnx(key, "held", 0)
                    pipe.hsetnx(key, "spent", 0)
                await pipe.execute()

    def _keys(self, user_id: str, order_id: str) -> list[str]:
        return [wallet_key(user_id), payment_key(user_id, order_id), ledger_key(user_id)]

    async def authorize(
        self, user_id: str, order_id: str, amount_fen: int, per_day_limit_fen: int
    ) -> Movement:
        status, amount, auth_id = await self._authorize(
            keys=[*self._keys(user_id, order_id), daily_key(user_id, spend_day())],
            args=[
                amount_fen,
                order_id,
                user_id,
                f"auth-{order_id}",
                per_day_limit_fen,
                self.ledger_maxlen,
                self.record_ttl_s,
            ],
        )
        return Movement(status, int(amount), auth_id)

    async def _move(self, user_id: str, order_id: str, target: str) -> Movement:
        status, amount = await self._settle(
            keys=self._keys(user_id, order_id),
            args=[target, order_id, self.ledger_maxlen, self.record_ttl_s],
        )
        return Movement(status, int(amount))

    async def capture(self, user_id: str, order_id: str) -> Movement:
        return await self._move(user_id, order_id, "CAPTURED")

    async def void(self, user_id: str, order_id: str) -> Movement:
        return await self._move(user_id, order_id, "VOIDED")

    async def refund(self, user_id: str, order_id: str) -> Movement:
        """CAPTURED -> REFUNDED once: the captured amount back to the balance (settle.lua)."""
        return await self._move(user_id, order_id, "REFUNDED")

    async def balance(self, user_id: str) -> dict[str, int]:
        """The wallet's money fields (opening, balance, held, spent) that it has."""
        stored = await self.redis.hgetall(wallet_key(user_id))
        return {k: int(v) for k, v in stored.items() if k in MONEY_FIELDS}
