"""Kafka intake assertions: "user U sent this intent", signed by the publisher, bound to that one intent.

A client that publishes ``IntentSubmitted`` straight to Kafka puts an assertion in ``user_assertion``:
an Ed25519-signed JWS (``ed25519_tokens``) with audience ``yiju-intake`` and the claims

- ``sub``: the user id; ``iat``/``exp``: at most ``YIJU_INTAKE_ASSERTION_MAX_TTL_S`` apart;
- ``idempotency_key``: the intent's idempotency key (required on Kafka: the order is found by it);
- ``text_sha256``: the SHA-256 (hex) of the intent's text, UTF-8.

So an assertion cannot be moved to another intent, another user or altered text, and an intent replayed
within its lifetime lands on the same order (the idempotency key). The publisher holds the private key
(``yiju.sdk.intake.IntakeSigner``, ``YIJU_INTAKE_SIGNING_KEY_FILE``); intake holds only public keys
(``YIJU_INTAKE_PUBLIC_KEYS_FILE``), so nothing in the platform can mint one. This key is its own: no
bearer-token secret or identity-provider key signs or verifies assertions.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from yiju.common import ed25519_tokens
from yiju.common.ed25519_tokens import PublicKeyFile, TokenError
from yiju.common.settings import Settings

AUDIENCE = "yiju-intake"
SIGNING_KEY_NAME = "intake-assertion.key"
PUBLIC_KEY_NAME = "intake-assertion.pub"


class IntakeAssertionError(Exception):
    """The intent's assertion is missing, invalid, out of date, or for another intent."""


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def local_key_path(settings: Settings, name: str) -> Path:
    """Where the local platform keeps a key (``$YIJU_DATA_DIR/secrets/<name>``)."""
    return Path(settings.data_dir) / "secrets" / name


class IntakeSigner:
    """Mints intake assertions with the publisher's private key."""

    def __init__(self, private_key: Ed25519PrivateKey, issuer: str) -> None:
        self.private_key = private_key
        self.issuer = issuer

    @classmethod
    def from_file(cls, path: str | Path, issuer: str) -> IntakeSigner:
        return cls(ed25519_tokens.load_private_key(Path(path).read_bytes()), issuer)

    @classmethod
    def from_settings(cls, settings: Settings) -> IntakeSigner:
        """The key at YIJU_INTAKE_SIGNING_KEY_FILE, else the local platform's under YIJU_DATA_DIR."""
        path = Path(settings.intake_signing_key_file or local_key_path(settings, SIGNING_KEY_NAME))
        if not path.exists():
            raise IntakeAssertionError(
                f"no intake signing key: set YIJU_INTAKE_SIGNING_KEY_FILE (looked for {path})"
            )
        return cls.from_file(path, settings.intake_assertion_issuer)

    def sign(
        self, user_id: str, idempotency_key: str, text: str, *, ttl_s: int = 300, now: float | None = None
    ) -> str:
        if not idempotency_key:
            raise IntakeAssertionError("an intake assertion binds an idempotency key; none was given")
        issued = int(time.time() if now is None else now)
        return ed25519_tokens.sign(
            self.private_key,
            {
                "sub": user_id,
                "aud": AUDIENCE,
                "iss": self.issuer,
                "iat": issued,
                "exp": issued + ttl_s,
                "idempotency_key": idempotency_key,
                "text_sha256": text_sha256(text),
            },
        )


class IntakeVerifier:
    """Checks intake assertions against the publishers' public keys (re-read when the file changes)."""

    def __init__(self, keys: PublicKeyFile | None, issuer: str, max_ttl_s: int) -> None:
        self.keys = keys
        self.issuer = issuer
        self.max_ttl_s = max_ttl_s

    @classmethod
    def from_settings(cls, settings: Settings) -> IntakeVerifier:
        keys = PublicKeyFile(settings.intake_public_keys_file) if settings.intake_public_keys_file else None
        return cls(keys, settings.intake_assertion_issuer, settings.intake_assertion_max_ttl_s)

    def verify(
        self, assertion: str, *, user_id: str, idempotency_key: str, text: str, at: float | None = None
    ) -> None:
        """Raises IntakeAssertionError unless `assertion` is valid at `at` (default now) for exactly this
        intent: this user, this idempotency key, this text."""
        if self.keys is None:
            raise IntakeAssertionError("Kafka intake has no verification keys (YIJU_INTAKE_PUBLIC_KEYS_FILE)")
        if not assertion:
            raise IntakeAssertionError("missing user assertion")
        if not idempotency_key:
            raise IntakeAssertionError("an intent published to Kafka needs an idempotency_key")
        try:
            claims = ed25519_tokens.verify(
                assertion,
                self.keys.keys(),
                audience=AUDIENCE,
                issuer=self.issuer,
                max_ttl_s=self.max_ttl_s,
                at=at,
            )
        except TokenError as exc:
            raise IntakeAssertionError(f"user assertion {exc}") from exc
        if claims.get("sub") != user_id:
            raise IntakeAssertionError("user assertion is for another user")
        if claims.get("idempotency_key") != idempotency_key:
            raise IntakeAssertionError("user assertion is for another intent (idempotency key)")
        if claims.get("text_sha256") != text_sha256(text):
            raise IntakeAssertionError("user assertion is for another text")
