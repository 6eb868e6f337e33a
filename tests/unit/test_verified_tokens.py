"""Verified-token cache: a token seen again skips the signature check, but never outlives its expiry,
its key material or its audience."""

from __future__ import annotations

import pytest

from yiju.common import auth
from yiju.common.auth import AuthError, VerifiedTokens, issue_token
from yiju.common.settings import Settings


@pytest.fixture
def settings() -> Settings:
    return Settings(jwt_secret="s" * 32, jwks_url="")


@pytest.fixture(autouse=True)
def empty_cache() -> None:
    auth.VERIFIED.clear()


def test_a_token_seen_again_is_not_verified_again(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real = auth._verify
    monkeypatch.setattr(auth, "_verify", lambda *a: calls.append(a) or real(*a))
    token = issue_token("u-1", settings)
    assert [auth.verify_token(token, settings).user_id for _ in range(5)] == ["u-1"] * 5
    assert len(calls) == 1


def test_another_secret_verifies_afresh_and_rejects(settings: Settings) -> None:
    token = issue_token("u-1", settings)
    auth.verify_token(token, settings)
    rotated = Settings(jwt_secret="r" * 32, jwks_url="")
    with pytest.raises(AuthError, match="invalid token"):
        auth.verify_token(token, rotated)


def test_the_audience_is_part_of_the_entry(settings: Settings) -> None:
    token = issue_token("u-1", settings, audience="another-api")
    assert auth._decode(token, settings, "another-api")["sub"] == "u-1"  # verified, and remembered
    with pytest.raises(AuthError, match="invalid token"):
        auth.verify_token(token, settings)  # the entry for another audience does not answer the edge's


def test_a_tampered_token_is_rejected_and_not_remembered(settings: Settings) -> None:
    token = issue_token("u-1", settings)
    head, body, sig = token.split(".")
    forged = f"{head}.{body}.{sig[:-2]}AA"
    for _ in range(2):
        with pytest.raises(AuthError):
            auth.verify_token(forged, settings)
    key = (forged, settings.jwt_audience, settings.jwt_issuer, settings.jwt_secret, "")
    assert auth.VERIFIED.get(key, 0) is None


def test_entries_end_at_expiry_or_max_age_whichever_first() -> None:
    cache = VerifiedTokens(max_entries=10, max_age_s=60)
    cache.put(("a",), {"sub": "u", "exp": 1_000}, now=990)
    assert cache.get(("a",), now=999) == {"sub": "u", "exp": 1_000}
    assert cache.get(("a",), now=1_000) is None
    cache.put(("b",), {"sub": "u", "exp": 10_000}, now=1_000)
    assert cache.get(("b",), now=1_059) is not None
    assert cache.get(("b",), now=1_060) is None


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    cache = VerifiedTokens(max_entries=2)
    for name in ("a", "b"):
        cache.put((name,), {"exp": 10**10}, now=0)
    assert cache.get(("a",), now=1) is not None  # a is now the most recently used
    cache.put(("c",), {"exp": 10**10}, now=1)
    assert cache.get(("b",), now=1) is None
    assert cache.get(("a",), now=1) is not None and cache.get(("c",), now=1) is not None
