"""Replay assertions: how a dead-lettered intake record gets back in after its user assertion expired.

A user assertion lives minutes; a dead letter may wait days for an operator. ``yiju dlq replay`` adds
a header ``x-yiju-replay-assertion`` to every intake record it replays: an Ed25519-signed JWS with the
replay tool's own key (``YIJU_REPLAY_SIGNING_KEY_FILE``; intake holds only ``YIJU_REPLAY_PUBLIC_KEYS_FILE``)
saying "this exact intent (``intent_sha256``: its user, text, idempotency key, locale and user
assertion), event ``event_id``, was dead-lettered at ``checked_at``". It lives ``TTL_S``.

Intake then runs the *same* check of the user assertion (signature by a publisher's key, this user, this
idempotency key, this text, lifetime bound), evaluated at ``checked_at`` instead of now. Nothing else is
relaxed: an assertion that was forged, for another intent, or already expired when intake dead-lettered
the record fails again; a replay header copied onto another record fails its binding.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from yiju.common import ed25519_tokens
from yiju.common.ed25519_tokens import LEEWAY_S, PublicKeyFile, TokenError
from yiju.common.settings import Settings
from yiju.gen.events.v1 import order_events_pb2 as ev

HEADER = "x-yiju-replay-assertion"
AUDIENCE = "yiju-intake-replay"
ISSUER = "yiju-dlq-replay"
TTL_S = 600
SIGNING_KEY_NAME = "dlq-replay.key"
PUBLIC_KEY_NAME = "dlq-replay.pub"


class ReplayAssertionError(Exception):
    """A replay header that is invalid, out of date or for another record."""


def intent_sha256(event: ev.IntentSubmitted) -> str:
    """A digest of every field of the intent (length-prefixed, so fields cannot run into each other)."""
    digest = hashlib.sha256()
    for value in (event.user_id, event.text, event.idempotency_key, event.locale, event.user_assertion):
        raw = value.encode()
        digest.update(len(raw).to_bytes(8, "big"))
        digest.update(raw)
    return digest.hexdigest()


class ReplaySigner:
    """Held by the dead-letter replay tool only."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self.private_key = private_key

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplaySigner | None:
        """The key at YIJU_REPLAY_SIGNING_KEY_FILE, else the local platform's; None when there is none."""
        configured = settings.replay_signing_key_file
        path = Path(configured or Path(settings.data_dir) / "secrets" / SIGNING_KEY_NAME)
        if not path.exists():
            if configured:
                raise ReplayAssertionError(f"YIJU_REPLAY_SIGNING_KEY_FILE {path} does not exist")
            return None
        return cls(ed25519_tokens.load_private_key(path.read_bytes()))

    def sign(
        self,
        event: ev.IntentSubmitted,
        *,
        event_id: str,
        dead_letter: str,
        checked_at: float,
        now: float | None = None,
    ) -> str:
        issued = int(time.time() if now is None else now)
        return ed25519_tokens.sign(
            self.private_key,
            {
                "aud": AUDIENCE,
                "iss": ISSUER,
                "iat": issued,
                "exp": issued + TTL_S,
                "event_id": event_id,
                "intent_sha256": intent_sha256(event),
                "dead_letter": dead_letter,
                "checked_at": int(checked_at),
            },
        )


class ReplayVerifier:
    """Held by intake: the replay tool's public keys."""

    def __init__(self, keys: PublicKeyFile | None) -> None:
        self.keys = keys

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplayVerifier:
        path = settings.replay_public_keys_file
        return cls(PublicKeyFile(path) if path else None)

    def checked_at(
        self, token: str, event: ev.IntentSubmitted, event_id: str, *, now: float | None = None
    ) -> float:
        """The time at which intake is to check the record's user assertion (see the module docstring)."""
        if self.keys is None:
            raise ReplayAssertionError(
                "intake has no replay verification keys (YIJU_REPLAY_PUBLIC_KEYS_FILE)"
            )
        when = time.time() if now is None else now
        try:
            claims = ed25519_tokens.verify(
                token, self.keys.keys(), audience=AUDIENCE, issuer=ISSUER, max_ttl_s=TTL_S, at=when
            )
        except TokenError as exc:
            raise ReplayAssertionError(f"replay assertion {exc}") from exc
        if claims.get("event_id") != event_id or claims.get("intent_sha256") != intent_sha256(event):
            raise ReplayAssertionError("replay assertion is for another record")
        checked = claims.get("checked_at")
        if not isinstance(checked, int) or checked > when + LEEWAY_S:
            raise ReplayAssertionError("replay assertion has no valid checked_at")
        return float(checked)
