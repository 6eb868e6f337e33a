"""The users a load test speaks for, and their credentials.

Synthetic users (`load-u-000001` ...) exist on the platform only when its services run with
YIJU_SYNTHETIC_USERS >= the number used (see yiju.common.catalog.synthetic_users). Bearer tokens (HTTP,
gRPC) and user assertions (Kafka intake) are minted locally with the platform's HS256 secret and
reused: a token for the whole run, an assertion until half its lifetime has passed.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from yiju.common.auth import issue_token, issue_user_assertion
from yiju.common.catalog import synthetic_user_id
from yiju.common.settings import Settings

ASSERTION_TTL_S = 300


def jwt_secret(settings: Settings) -> str:
    """The platform's signing secret: YIJU_JWT_SECRET, else the local run's $YIJU_DATA_DIR/secrets file."""
    if settings.jwt_secret:
        return settings.jwt_secret
    path = Path(settings.data_dir) / "secrets" / "jwt-secret"
    if path.exists():
        return path.read_text().strip()
    raise RuntimeError(
        f"no JWT secret: set YIJU_JWT_SECRET or YIJU_DATA_DIR (looked for {path}) to mint load-test tokens"
    )


class UserPool:
    """`count` synthetic users, or an explicit list, drawn uniformly at random."""

    def __init__(self, count: int = 0, ids: list[str] | None = None, seed: int = 13) -> None:
        self.ids = list(ids) if ids else [synthetic_user_id(n) for n in range(1, count + 1)]
        if not self.ids:
            raise ValueError("a load test needs at least one user")
        self._rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.ids)

    def draw(self) -> str:
        return self.ids[int(self._rng.random() * len(self.ids))]


class Credentials:
    """Bearer tokens and Kafka user assertions for any user, signed with the platform's secret."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.model_copy(update={"jwt_secret": jwt_secret(settings)})
        self._tokens: dict[str, str] = {}
        self._assertions: dict[str, tuple[float, str]] = {}

    def prime(self, user_ids: list[str], *, assertions: bool) -> None:
        """Mints every user's token (or Kafka assertion) up front, so signing is not measured as load."""
        for user_id in user_ids:
            if assertions:
                self.assertion(user_id)
            else:
                self.token(user_id)

    def token(self, user_id: str) -> str:
        token = self._tokens.get(user_id)
        if token is None:
            token = self._tokens[user_id] = issue_token(user_id, self.settings, ttl_s=24 * 3600)
        return token

    def assertion(self, user_id: str) -> str:
        now = time.monotonic()
        held = self._assertions.get(user_id)
        if held is None or now - held[0] > ASSERTION_TTL_S / 2:
            held = self._assertions[user_id] = (
                now,
                issue_user_assertion(user_id, self.settings, ttl_s=ASSERTION_TTL_S),
            )
        return held[1]
