"""The demo catalog, users and campaign: the only source of prices, merchants and payers."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

# Synthetic users for load tests (YIJU_SYNTHETIC_USERS=N): load-u-000001 ... load-u-N.
SYNTHETIC_USER_PREFIX = "load-u-"
SYNTHETIC_WALLET_FEN = 100_000_000_000  # ¥1,000,000,000
SYNTHETIC_LIMIT_FEN = 100_000_000  # ¥1,000,000 per order, and no confirmation below it
_SYNTHETIC_ADDRESSES = {"home": "Load Test Road 1", "office": "Load Test Tower 2"}


@dataclass(frozen=True, slots=True)
class Merchant:
    id: str
    name: str
    name_zh: str
    vertical: str


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    merchant_id: str
    vertical: str
    name: str
    name_zh: str
    aliases: tuple[str, ...]
    price_fen: int
    unit: str
    stock: int

    @property
    def terms(self) -> tuple[str, ...]:
        """Every way the catalog lets a sentence name this product."""
        return (self.name, self.name_zh, *self.aliases)


@dataclass(frozen=True, slots=True)
class Campaign:
    id: str
    name: str
    min_order_fen: int
    discount_fen: int
    budget_fen: int
    per_user_max_uses: int


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    locale: str
    wallet_fen: int
    spend_limit_per_order_fen: int
    confirm_above_fen: int
    addresses: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Catalog:
    version: str
    currency: str
    merchants: dict[str, Merchant]
    products: dict[str, Product]
    campaigns: dict[str, Campaign]
    users: dict[str, User]

    def product(self, sku: str) -> Product | None:
        return self.products.get(sku)

    def user(self, user_id: str) -> User | None:
        return self.users.get(user_id)

    @property
    def campaign(self) -> Campaign | None:
        """The active campaign (the demo has one)."""
        return next(iter(self.campaigns.values()), None)


def synthetic_user_id(n: int) -> str:
    """The id of synthetic (load-test) user number n, counting from 1: load-u-000001, ..."""
    return f"{SYNTHETIC_USER_PREFIX}{n:06d}"


def synthetic_users(count: int) -> dict[str, User]:
    """`count` load-test users with a big wallet and big limits (so a load test is never declined, held
    for confirmation or over a daily limit) and the two standard saved places."""
    users: dict[str, User] = {}
    for n in range(1, count + 1):
        uid = synthetic_user_id(n)
        users[uid] = User(
            id=uid,
            name=f"Load User {n:06d}",
            locale="zh-CN" if n % 2 else "en-SG",
            wallet_fen=SYNTHETIC_WALLET_FEN,
            spend_limit_per_order_fen=SYNTHETIC_LIMIT_FEN,
            confirm_above_fen=SYNTHETIC_LIMIT_FEN,
            addresses=dict(_SYNTHETIC_ADDRESSES),
        )
    return users


def load_catalog(directory: Path, synthetic_users_count: int = 0) -> Catalog:
    """The catalog under `directory`; with `synthetic_users_count` (YIJU_SYNTHETIC_USERS), that many
    load-test users are added after the demo users (see `synthetic_users`)."""
    raw_catalog = (directory / "catalog.json").read_bytes()
    raw_users = (directory / "users.json").read_bytes()
    data = json.loads(raw_catalog)
    users = json.loads(raw_users)
    version = hashlib.sha256(raw_catalog + raw_users).hexdigest()[:12]
    merchants = {
        m["id"]: Merchant(m["id"], m["name"], m.get("name_zh", ""), m["vertical"]) for m in data["merchants"]
    }
    products = {
        p["sku"]: Product(
            sku=p["sku"],
            merchant_id=p["merchant"],
            vertical=p["vertical"],
            name=p["name"],
            name_zh=p.get("name_zh", ""),
            aliases=tuple(p.get("aliases", ())),
            price_fen=int(p["price_fen"]),
            unit=p.get("unit", ""),
            stock=int(p.get("stock", 0)),
        )
        for p in data["products"]
    }
    campaigns = {
        c["id"]: Campaign(
            id=c["id"],
            name=c["name"],
            min_order_fen=int(c["rule"]["min_order_fen"]),
            discount_fen=int(c["rule"]["discount_fen"]),
            budget_fen=int(c["budget_fen"]),
            per_user_max_uses=int(c["per_user_max_uses"]),
        )
        for c in data.get("campaigns", [])
        if c.get("rule", {}).get("type") == "threshold_discount"
    }
    user_map = {
        u["id"]: User(
            id=u["id"],
            name=u["name"],
            locale=u.get("locale", "en"),
            wallet_fen=int(u["wallet_fen"]),
            spend_limit_per_order_fen=int(u["spend_limit_per_order_fen"]),
            confirm_above_fen=int(u["confirm_above_fen"]),
            addresses=dict(u.get("addresses", {})),
        )
        for u in users["users"]
    }
    if synthetic_users_count > 0:
        for uid, user in synthetic_users(synthetic_users_count).items():
            user_map.setdefault(uid, user)
    return Catalog(version, data.get("currency", "CNY"), merchants, products, campaigns, user_map)
