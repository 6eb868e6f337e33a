"""Who is speaking at the edge: bearer tokens (JWT) and API keys.

Local run: HS256 with a generated secret (YIJU_JWT_SECRET). Production: RS256 tokens from the
identity provider, verified against its JWKS (YIJU_JWKS_URL). API keys are stored only as SHA-256
hashes (YIJU_API_KEYS_FILE). A principal is a user id; nothing else about money comes from a request.
Intents published straight to Kafka carry an assertion signed with a key of its own, bound to the
intent: ``yiju.common.intake_assertion`` (never a bearer token, never this module's secret).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jwt

from yiju.common.settings import Settings


class AuthError(Exception):
    """Missing or invalid credentials."""


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    method: str  # "jwt" | "api_key"
    # From the token's "roles" claim (set by the identity provider): OPERATOR_ROLE may refund any order.
    roles: frozenset[str] = frozenset()

    @property
    def is_operator(self) -> bool:
        return OPERATOR_ROLE in self.roles


OPERATOR_ROLE = "operator"


def issue_token(
    user_id: str,
    settings: Settings,
    *,
    audience: str | None = None,
    ttl_s: int | None = None,
    roles: tuple[str, ...] = (),
) -> str:
    """Mints an HS256 token (local run and tests; production tokens come from the identity provider)."""
    if not settings.jwt_secret:
        raise AuthError("no YIJU_JWT_SECRET configured to sign tokens with")
    now = int(time.time())
    claims = {
        "sub": user_id,
        "iss": settings.jwt_issuer,
        "aud": audience or settings.jwt_audience,
        "iat": now,
        "exp": now + (ttl_s or settings.token_ttl_s),
        **({"roles": list(roles)} if roles else {}),
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


@lru_cache(maxsize=4)
def _jwks_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=300)


class VerifiedTokens:
    """Claims of tokens already verified, so a token seen again skips the signature check.

    A hot path verifies the same token over and over: a client's bearer token on every request.
    An entry is the exact token string with the audience, issuer and key material it was verified
    against; it is used only while the token is unexpired, and at most `max_age_s` after its check,
    so a key revoked at the identity provider takes effect within that time. Bounded (least recently
    used entries go first); thread-safe.
    """

    def __init__(self, max_entries: int = 100_000, max_age_s: float = 60.0) -> None:
        self.max_entries = max_entries
        self.max_age_s = max_age_s
        self._entries: OrderedDict[tuple[str, ...], tuple[dict, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...], now: float) -> dict | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            claims, good_until = entry
            if now >= good_until:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return claims

    def put(self, key: tuple[str, ...], claims: dict, now: float) -> None:
        good_until = min(float(claims["exp"]), now + self.max_age_s)
        with self._lock:
            self._entries[key] = (claims, good_until)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


VERIFIED = VerifiedTokens()


def _decode(token: str, settings: Settings, audience: str) -> dict:
    """The token's claims once its signature, audience, issuer and expiry are checked (cached)."""
    key = (token, audience, settings.jwt_issuer, settings.jwt_secret, settings.jwks_url)
    now = time.time()
    claims = VERIFIED.get(key, now)
    if claims is None:
        claims = _verify(token, settings, audience)
        VERIFIED.put(key, claims, now)
    return claims


def _verify(token: str, settings: Settings, audience: str) -> dict:
    options = {"require": ["sub", "exp", "iat"]}
    try:
        if settings.jwks_url and jwt.get_unverified_header(token).get("alg", "").startswith(
            ("RS", "ES", "PS")
        ):
            key = _jwks_client(settings.jwks_url).get_signing_key_from_jwt(token).key
            return jwt.decode(
                token,
                key,
                algorithms=["RS256", "ES256", "PS256"],
                audience=audience,
                issuer=settings.jwt_issuer,
                options=options,
                leeway=30,
            )
        if not settings.jwt_secret:
            raise AuthError("token authentication is not configured")
        return jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=["HS256"],
            audience=audience,
            issuer=settings.jwt_issuer,
            options=options,
            leeway=30,
        )
    except jwt.PyJWTError as exc:
        raise AuthError(f"invalid token: {exc}") from exc


def verify_token(token: str, settings: Settings) -> Principal:
    claims = _decode(token, settings, settings.jwt_audience)
    roles = claims.get("roles")
    granted = frozenset(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else frozenset()
    return Principal(str(claims["sub"]), "jwt", granted)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@lru_cache(maxsize=4)
def _api_keys(path: str, mtime: float) -> dict[str, str]:
    return dict(json.loads(Path(path).read_text()).get("keys", {}))


def verify_api_key(key: str, settings: Settings) -> Principal:
    if not settings.api_keys_file or not Path(settings.api_keys_file).exists():
        raise AuthError("API keys are not configured")
    path = settings.api_keys_file
    keys = _api_keys(path, Path(path).stat().st_mtime)
    digest = hash_api_key(key)
    for stored, user_id in keys.items():
        if hmac.compare_digest(stored, digest):
            return Principal(user_id, "api_key")
    raise AuthError("unknown API key")


def authenticate(authorization: str | None, api_key: str | None, settings: Settings) -> Principal:
    """The principal behind an Authorization header ("Bearer ...") or an X-API-Key header."""
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("Authorization must be 'Bearer <token>'")
        return verify_token(token.strip(), settings)
    if api_key:
        return verify_api_key(api_key, settings)
    raise AuthError("missing credentials: send 'Authorization: Bearer <token>' or 'X-API-Key'")
