"""Ed25519 key pairs and the compact signed tokens (JWS, alg EdDSA) built on them.

The building block of the Kafka intake's trust (``yiju.common.intake_assertion``,
``yiju.common.replay_assertion``): whoever signs holds a private key; whoever verifies holds only public
keys. A public-key file may hold several PEM keys (rotation: add the new key, switch the signer, remove
the old key); a token names its key by ``kid``, the first 16 hex digits of the SHA-256 of the raw public
key. Time is checked here, not by PyJWT, so that a verifier can ask "was it valid at time T?".
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "EdDSA"
LEEWAY_S = 30
_PEM_END = b"-----END PUBLIC KEY-----"


class TokenError(Exception):
    """A token that is missing, malformed, signed by an unknown key, or out of date."""


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_key_pair() -> tuple[bytes, bytes]:
    """A new key pair as (private key PEM, public key PEM)."""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def write_key_pair(private_path: Path, public_path: Path) -> None:
    """Generates a key pair into two files (the private one 0600), unless the private one exists."""
    if private_path.exists():
        return
    private_pem, public_pem = generate_key_pair()
    private_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    public_path.write_bytes(public_pem)


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise TokenError("the signing key is not an Ed25519 private key")
    return key


def load_public_keys(pem: bytes) -> dict[str, Ed25519PublicKey]:
    """Every Ed25519 public key of a PEM bundle, by key id."""
    keys: dict[str, Ed25519PublicKey] = {}
    for block in pem.split(_PEM_END):
        if b"-----BEGIN PUBLIC KEY-----" not in block:
            continue
        key = serialization.load_pem_public_key(block.strip() + b"\n" + _PEM_END + b"\n")
        if not isinstance(key, Ed25519PublicKey):
            raise TokenError("a verification key is not an Ed25519 public key")
        keys[key_id(key)] = key
    if not keys:
        raise TokenError("no Ed25519 public key in the key file")
    return keys


class PublicKeyFile:
    """Public keys read from a PEM file, re-read when the file changes (a rotated Secret). Thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._loaded: tuple[float, dict[str, Ed25519PublicKey]] | None = None

    def keys(self) -> dict[str, Ed25519PublicKey]:
        try:
            mtime = self.path.stat().st_mtime
        except OSError as exc:
            raise TokenError(f"cannot read the verification keys at {self.path}: {exc}") from exc
        with self._lock:
            if self._loaded is None or self._loaded[0] != mtime:
                self._loaded = (mtime, load_public_keys(self.path.read_bytes()))
            return self._loaded[1]


def sign(private_key: Ed25519PrivateKey, claims: Mapping[str, Any]) -> str:
    """A compact JWS of `claims`, naming the key it was signed with."""
    return jwt.encode(
        dict(claims), private_key, algorithm=ALGORITHM, headers={"kid": key_id(private_key.public_key())}
    )


def verify(
    token: str,
    keys: Mapping[str, Ed25519PublicKey],
    *,
    audience: str,
    issuer: str,
    max_ttl_s: float,
    at: float | None = None,
) -> dict[str, Any]:
    """The claims of `token` once its signature (by one of `keys`), audience and issuer are checked, and
    it is valid at time `at` (default now): issued no later than `at` and expiring after it (both with
    LEEWAY_S), and living at most `max_ttl_s`."""
    if not token:
        raise TokenError("missing")
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise TokenError(f"must be signed with {ALGORITHM}, not {header.get('alg')!r}")
        key = keys.get(str(header.get("kid", "")))
        if key is None:
            raise TokenError("signed by an unknown key")
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            options={
                "require": ["iat", "exp"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise TokenError(f"invalid: {exc}") from exc
    when = time.time() if at is None else at
    issued, expires = claims["iat"], claims["exp"]
    if not isinstance(issued, int | float) or not isinstance(expires, int | float):
        raise TokenError("invalid: iat and exp must be numbers")
    if expires - issued > max_ttl_s:
        raise TokenError(f"lives {expires - issued:.0f}s, longer than the {max_ttl_s:.0f}s allowed")
    if issued > when + LEEWAY_S:
        raise TokenError("issued in the future")
    if expires <= when - LEEWAY_S:
        raise TokenError("expired")
    return claims
