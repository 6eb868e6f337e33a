"""Edge trust outside the services: the default environment is not "local", the demo-token endpoint
exists only when `make run` asks for it, and the local platform makes and hands out the keys (the
services get only public ones)."""

from __future__ import annotations

import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from yiju.common.catalog import Catalog
from yiju.common.intake_assertion import IntakeSigner, IntakeVerifier
from yiju.common.replay_assertion import ReplaySigner
from yiju.common.settings import Settings
from yiju.intent.console.routes import mount_console
from yiju.intent.console.settings import ConsoleSettings
from yiju_infra.local import run
from yiju_infra.local.credentials import ensure_local_credentials
from yiju_infra.local.platform import LocalPlatform, Ports

DEMO_ROUTES = {"/v1/console/users", "/v1/console/session"}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("YIJU_ENV", "YIJU_DEMO_TOKENS"):
        monkeypatch.delenv(var, raising=False)


def test_the_default_environment_is_not_local(clean_env: None) -> None:
    settings = Settings()
    assert settings.env == "production"
    assert settings.demo_tokens is False


def console_app(catalog: Catalog, settings: Settings) -> FastAPI:
    app = FastAPI()
    ingest = SimpleNamespace(settings=settings, catalog=catalog, redis=None)
    mount_console(app, ingest, orders=SimpleNamespace(), settings=ConsoleSettings())  # type: ignore[arg-type]
    return app


@pytest.mark.parametrize(
    ("env", "demo_tokens"), [("production", False), ("production", True), ("local", False), ("dev", True)]
)
def test_no_demo_tokens_unless_make_run_asks(catalog: Catalog, env: str, demo_tokens: bool) -> None:
    app = console_app(catalog, Settings(env=env, demo_tokens=demo_tokens, jwt_secret="s" * 32))
    assert not DEMO_ROUTES & {getattr(r, "path", "") for r in app.routes}
    reply = TestClient(app).get("/v1/console/session", params={"user_id": "u-1002"})
    assert reply.status_code == 404


def test_make_run_turns_demo_tokens_on(catalog: Catalog) -> None:
    args = run.parse_args([])
    assert run.demo_env(args.demo_tokens) == {"YIJU_DEMO_TOKENS": "1"}
    assert run.demo_env(run.parse_args(["--no-demo-tokens"]).demo_tokens) == {}
    settings = Settings(env="local", demo_tokens=True, jwt_secret="s" * 32)
    reply = TestClient(console_app(catalog, settings)).get(
        "/v1/console/session", params={"user_id": "u-1002"}
    )
    assert reply.status_code == 200 and reply.json()["token"]


def test_a_local_platform_without_make_run_has_no_demo_tokens(tmp_path: Path, clean_env: None) -> None:
    env = LocalPlatform(tmp_path, Ports()).service_env("intent")
    assert env["YIJU_ENV"] == "local"
    assert "YIJU_DEMO_TOKENS" not in env


def test_local_credentials_give_services_only_public_keys(tmp_path: Path) -> None:
    env = ensure_local_credentials(tmp_path)
    assert env["YIJU_ENV"] == "local"
    secrets = tmp_path / "secrets"
    for name in ("intake-assertion.key", "dlq-replay.key"):
        assert stat.S_IMODE((secrets / name).stat().st_mode) == 0o600
        assert not any(name in value for value in env.values()), f"{name} was handed to the services"
    assert "PRIVATE" not in Path(env["YIJU_INTAKE_PUBLIC_KEYS_FILE"]).read_text()
    assert "PRIVATE" not in Path(env["YIJU_REPLAY_PUBLIC_KEYS_FILE"]).read_text()
    # The local signers (SDK, load generator, tests, `yiju dlq replay`) find the private keys by data dir;
    # the services verify with what they were given.
    signer = IntakeSigner.from_settings(Settings(data_dir=tmp_path))
    verifier = IntakeVerifier.from_settings(
        Settings(intake_public_keys_file=env["YIJU_INTAKE_PUBLIC_KEYS_FILE"])
    )
    verifier.verify(signer.sign("u-1", "k", "tea"), user_id="u-1", idempotency_key="k", text="tea")
    assert ReplaySigner.from_settings(Settings(data_dir=tmp_path)) is not None
    before = (secrets / "intake-assertion.key").read_bytes()
    assert ensure_local_credentials(tmp_path) == env  # kept across restarts
    assert (secrets / "intake-assertion.key").read_bytes() == before
