"""Kafka intake assertions: Ed25519, a key of their own, bound to one intent (user, idempotency key,
text); intake holds only public keys. Replays of dead letters are checked as of their dead-lettering."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from yiju.common import ed25519_tokens
from yiju.common.auth import issue_token
from yiju.common.ed25519_tokens import PublicKeyFile, generate_key_pair, load_private_key
from yiju.common.intake_assertion import IntakeAssertionError, IntakeSigner, IntakeVerifier
from yiju.common.replay_assertion import ReplayAssertionError, ReplaySigner, ReplayVerifier
from yiju.common.settings import Settings
from yiju.gen.events.v1 import order_events_pb2 as ev

ISSUER = "yiju-intake-publisher"
T0 = 1_900_000_000.0  # a fixed "now", so no test depends on the clock


def key_files(tmp_path: Path, name: str) -> tuple[Path, Path]:
    private_pem, public_pem = generate_key_pair()
    (tmp_path / f"{name}.key").write_bytes(private_pem)
    (tmp_path / f"{name}.pub").write_bytes(public_pem)
    return tmp_path / f"{name}.key", tmp_path / f"{name}.pub"


@pytest.fixture
def intake_keys(tmp_path: Path) -> tuple[Path, Path]:
    return key_files(tmp_path, "intake")


@pytest.fixture
def signer(intake_keys: tuple[Path, Path]) -> IntakeSigner:
    return IntakeSigner.from_file(intake_keys[0], ISSUER)


@pytest.fixture
def verifier(intake_keys: tuple[Path, Path]) -> IntakeVerifier:
    return IntakeVerifier(PublicKeyFile(intake_keys[1]), ISSUER, max_ttl_s=900)


def intent(
    signer: IntakeSigner, *, key: str = "k-1", text: str = "two lattes", at: float = T0
) -> ev.IntentSubmitted:
    return ev.IntentSubmitted(
        user_id="u-1004",
        text=text,
        idempotency_key=key,
        user_assertion=signer.sign("u-1004", key, text, ttl_s=300, now=at),
    )


def check(verifier: IntakeVerifier, event: ev.IntentSubmitted, at: float | None = T0) -> None:
    verifier.verify(
        event.user_assertion,
        user_id=event.user_id,
        idempotency_key=event.idempotency_key,
        text=event.text,
        at=at,
    )


def test_an_assertion_admits_exactly_its_own_intent(signer: IntakeSigner, verifier: IntakeVerifier) -> None:
    event = intent(signer)
    check(verifier, event)
    for field, value, why in [
        ("idempotency_key", "k-2", "another intent"),
        ("text", "two lattes and a cake", "another text"),
        ("text", "two lattes ", "another text"),
        ("user_id", "u-1001", "another user"),
        ("idempotency_key", "", "needs an idempotency_key"),
    ]:
        moved = ev.IntentSubmitted()
        moved.CopyFrom(event)
        setattr(moved, field, value)
        with pytest.raises(IntakeAssertionError, match=why):
            check(verifier, moved)


def test_an_assertion_for_one_intent_fails_on_another(signer: IntakeSigner, verifier: IntakeVerifier) -> None:
    first, second = intent(signer, key="k-1", text="a latte"), intent(signer, key="k-2", text="ten phones")
    swapped = ev.IntentSubmitted()
    swapped.CopyFrom(second)
    swapped.user_assertion = first.user_assertion
    check(verifier, second)
    with pytest.raises(IntakeAssertionError, match="another"):
        check(verifier, swapped)


def test_only_a_publisher_key_signs_assertions(tmp_path: Path, verifier: IntakeVerifier) -> None:
    stranger = IntakeSigner.from_file(key_files(tmp_path, "stranger")[0], ISSUER)
    with pytest.raises(IntakeAssertionError, match="unknown key"):
        check(verifier, intent(stranger))
    # The platform's bearer-token secret signs no assertion, whatever the audience says.
    hs256 = issue_token("u-1004", Settings(jwt_secret="s" * 32), audience="yiju-intake")
    event = ev.IntentSubmitted(user_id="u-1004", text="a", idempotency_key="k", user_assertion=hs256)
    with pytest.raises(IntakeAssertionError, match="EdDSA"):
        check(verifier, event, at=None)


def test_a_tampered_assertion_is_rejected(signer: IntakeSigner, verifier: IntakeVerifier) -> None:
    event = intent(signer)
    head, body, sig = event.user_assertion.split(".")
    claims = jwt.api_jws.base64url_decode(body)
    forged_body = jwt.utils.base64url_encode(claims.replace(b"u-1004", b"u-1001")).decode()
    event.user_id, event.user_assertion = "u-1001", f"{head}.{forged_body}.{sig}"
    with pytest.raises(IntakeAssertionError, match="invalid"):
        check(verifier, event)


def test_time_bounds(signer: IntakeSigner, verifier: IntakeVerifier) -> None:
    event = intent(signer, at=T0)
    check(verifier, event, at=T0 + 299)
    with pytest.raises(IntakeAssertionError, match="expired"):
        check(verifier, event, at=T0 + 300 + ed25519_tokens.LEEWAY_S)
    with pytest.raises(IntakeAssertionError, match="future"):
        check(verifier, event, at=T0 - ed25519_tokens.LEEWAY_S - 1)
    forever = ev.IntentSubmitted()
    forever.CopyFrom(event)
    forever.user_assertion = signer.sign("u-1004", "k-1", "two lattes", ttl_s=30 * 24 * 3600, now=T0)
    with pytest.raises(IntakeAssertionError, match="longer than"):
        check(verifier, forever)


def test_intake_without_keys_admits_nothing(signer: IntakeSigner) -> None:
    with pytest.raises(IntakeAssertionError, match="no verification keys"):
        check(IntakeVerifier.from_settings(Settings(intake_public_keys_file="")), intent(signer))


def test_rotation_two_public_keys_in_one_file(tmp_path: Path, intake_keys: tuple[Path, Path]) -> None:
    new_private, new_public = key_files(tmp_path, "next")
    bundle = tmp_path / "bundle.pub"
    bundle.write_bytes(intake_keys[1].read_bytes() + new_public.read_bytes())
    both = IntakeVerifier(PublicKeyFile(bundle), ISSUER, max_ttl_s=900)
    check(both, intent(IntakeSigner.from_file(intake_keys[0], ISSUER)))
    check(both, intent(IntakeSigner.from_file(new_private, ISSUER)))


# --- replays of dead letters ------------------------------------------------------------------------------


@pytest.fixture
def replay_keys(tmp_path: Path) -> tuple[ReplaySigner, ReplayVerifier]:
    private, public = key_files(tmp_path, "replay")
    return ReplaySigner(load_private_key(private.read_bytes())), ReplayVerifier(PublicKeyFile(public))


def replayed_at(
    replay: tuple[ReplaySigner, ReplayVerifier],
    event: ev.IntentSubmitted,
    *,
    dead_lettered: float,
    now: float,
) -> float:
    signer, verifier = replay
    token = signer.sign(event, event_id="e-1", dead_letter="dlq/0/7", checked_at=dead_lettered, now=now)
    return verifier.checked_at(token, event, "e-1", now=now)


def test_a_replayed_dead_letter_is_checked_as_of_its_dead_lettering(
    signer: IntakeSigner, verifier: IntakeVerifier, replay_keys: tuple[ReplaySigner, ReplayVerifier]
) -> None:
    event = intent(signer, at=T0)
    days_later = T0 + 3 * 24 * 3600
    with pytest.raises(IntakeAssertionError, match="expired"):
        check(verifier, event, at=days_later)  # without the replay tool's word: expired
    at = replayed_at(replay_keys, event, dead_lettered=T0 + 5, now=days_later)
    check(verifier, event, at=at)  # the same check, as of when intake dead-lettered it
    late = replayed_at(replay_keys, event, dead_lettered=T0 + 3600, now=days_later)
    with pytest.raises(IntakeAssertionError, match="expired"):
        check(verifier, event, at=late)  # already expired when it was dead-lettered: stays out


def test_a_replay_assertion_is_bound_to_its_record(
    signer: IntakeSigner, replay_keys: tuple[ReplaySigner, ReplayVerifier]
) -> None:
    replay_signer, replay_verifier = replay_keys
    event = intent(signer)
    token = replay_signer.sign(event, event_id="e-1", dead_letter="dlq/0/7", checked_at=T0, now=T0 + 10)
    assert replay_verifier.checked_at(token, event, "e-1", now=T0 + 10) == T0
    other = intent(signer, key="k-2", text="ten phones")
    with pytest.raises(ReplayAssertionError, match="another record"):
        replay_verifier.checked_at(token, other, "e-1", now=T0 + 10)
    with pytest.raises(ReplayAssertionError, match="another record"):
        replay_verifier.checked_at(token, event, "e-2", now=T0 + 10)
    with pytest.raises(ReplayAssertionError, match="expired"):
        replay_verifier.checked_at(token, event, "e-1", now=T0 + 3600)


def test_only_the_replay_key_vouches_for_a_replay(
    tmp_path: Path, signer: IntakeSigner, replay_keys: tuple[ReplaySigner, ReplayVerifier]
) -> None:
    event = intent(signer)
    publisher_as_replayer = ReplaySigner(signer.private_key)  # a publisher's key is not the replay tool's
    token = publisher_as_replayer.sign(event, event_id="e-1", dead_letter="d", checked_at=T0, now=T0)
    with pytest.raises(ReplayAssertionError, match="unknown key"):
        replay_keys[1].checked_at(token, event, "e-1", now=T0)
    future = replay_keys[0].sign(event, event_id="e-1", dead_letter="d", checked_at=T0 + 3600, now=T0)
    with pytest.raises(ReplayAssertionError, match="checked_at"):
        replay_keys[1].checked_at(future, event, "e-1", now=T0)


def test_signers_find_the_local_platforms_keys(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    with pytest.raises(IntakeAssertionError, match="YIJU_INTAKE_SIGNING_KEY_FILE"):
        IntakeSigner.from_settings(settings)
    assert ReplaySigner.from_settings(settings) is None
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    ed25519_tokens.write_key_pair(secrets / "intake-assertion.key", secrets / "intake-assertion.pub")
    ed25519_tokens.write_key_pair(secrets / "dlq-replay.key", secrets / "dlq-replay.pub")
    assert (secrets / "intake-assertion.key").stat().st_mode & 0o777 == 0o600
    local = IntakeSigner.from_settings(settings)
    verifier = IntakeVerifier.from_settings(
        Settings(intake_public_keys_file=str(secrets / "intake-assertion.pub"))
    )
    event = intent(local, at=time.time())
    check(verifier, event, at=None)
    assert ReplaySigner.from_settings(settings) is not None
