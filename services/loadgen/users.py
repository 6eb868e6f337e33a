"""The users a load test speaks for, and their credentials.

Synthetic users (`load-u-000001` ...) exist on the platform only when its services run with
YIJU_SYNTHETIC_USERS >= the number used (see yiju.common.catalog.synthetic_users). Bearer tokens (HTTP,
gRPC) are minted locally with the platform's HS256 secret and reused for the whole run. Kafka intake
assertions are bound to one intent each, so every intent gets its own, signed with the intake signing
key (YIJU_INTAKE_SIGNING_KEY_FILE, or the local platform's under YIJU_DATA_DIR) as a client team would.
"""

from __future__ import annotations

import random
from pathlib import Path

from yiju.common.auth import issue_token
from yiju.common.catalog import synthetic_user_id
from yiju.common.intake_assertion import IntakeSigner
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
    """Bearer tokens for any user (the platform's secret), and Kafka intake assertions (the intake key)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._tokens: dict[str, str] = {}
        self._signer: IntakeSigner | None = None

    def prime(self, user_ids: list[str], *, assertions: bool) -> None:
        """Mints every user's token up front (or loads the intake signing key), so that is not measured
        as load. An intake assertion binds one intent: it is signed as the intent is sent."""
        if assertions:
            self._signer = IntakeSigner.from_settings(self.settings)
            return
        for user_id in user_ids:
            self.token(user_id)

    def token(self, user_id: str) -> str:
        token = self._tokens.get(user_id)
        if token is None:
            if not self.settings.jwt_secret:
                self.settings = self.settings.model_copy(update={"jwt_secret": jwt_secret(self.settings)})
            token = self._tokens[user_id] = issue_token(user_id, self.settings, ttl_s=24 * 3600)
        return token

    def assertion(self, user_id: str, idempotency_key: str, text: str) -> str:
        """The intake assertion of one intent."""
        if self._signer is None:
            self._signer = IntakeSigner.from_settings(self.settings)
        return self._signer.sign(user_id, idempotency_key, text, ttl_s=ASSERTION_TTL_S)
