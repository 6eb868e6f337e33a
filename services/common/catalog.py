"""The demo catalog, users and campaign: the only source of prices, merchants and payers."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path


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


def load_catalog(directory: Path) -> Catalog:
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
    return Catalog(version, data.get("currency", "CNY"), merchants, products, campaigns, user_map)
