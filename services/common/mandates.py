"""Spending mandates: what a user allows the platform to spend for them.

Per order and confirmation threshold come from users.json; per day, allowed verticals and how long
an unconfirmed order stays open come from catalog/mandates.json (defaults for unlisted users).
Planning enforces them; payment checks them again (the per-day limit atomically with the hold).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from yiju.common.catalog import User

ALL_VERTICALS = ("food", "grocery", "retail", "ride", "travel")


@dataclass(frozen=True, slots=True)
class Mandate:
    per_order_fen: int
    per_day_fen: int
    confirm_above_fen: int
    allowed_verticals: frozenset[str]
    confirmation_ttl_s: int


@lru_cache(maxsize=4)
def _load(path: str) -> dict:
    file = Path(path)
    return json.loads(file.read_text()) if file.exists() else {}


def mandate_for(user: User, catalog_dir: Path) -> Mandate:
    data = _load(str(catalog_dir / "mandates.json"))
    defaults = data.get("defaults", {})
    own = data.get("users", {}).get(user.id, {})
    multiple = int(defaults.get("per_day_limit_fen_multiple_of_per_order", 3))
    return Mandate(
        per_order_fen=user.spend_limit_per_order_fen,
        per_day_fen=int(own.get("per_day_limit_fen", user.spend_limit_per_order_fen * multiple)),
        confirm_above_fen=user.confirm_above_fen,
        allowed_verticals=frozenset(
            own.get("allowed_verticals", defaults.get("allowed_verticals", ALL_VERTICALS))
        ),
        confirmation_ttl_s=int(own.get("confirmation_ttl_s", defaults.get("confirmation_ttl_s", 900))),
    )


def spend_day(now: datetime | None = None) -> str:
    """The day a spend counts against (UTC+8, the campaign's calendar)."""
    moment = (now or datetime.now(UTC)).timestamp() + 8 * 3600
    return datetime.fromtimestamp(moment, UTC).strftime("%Y%m%d")


def daily_key(user_id: str, day: str) -> str:
    return f"daily:{{{user_id}}}:{day}"
