"""The ``yiju`` command against an in-memory intent service: output, credentials and exit codes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import httpx
import pytest

from yiju.cli import exitcodes
from yiju.cli.commands import register_all
from yiju.cli.main import main
from yiju.cli.render import cny
from yiju.sdk import NO_RETRY, OrderStatus, YijuClient
from yiju.sdk.config import package_version
from yiju.sdk.testing import FakeIntentService

S = OrderStatus


class Cli:
    """Runs ``main`` with a client factory wired to a fake service; records what the factory was given."""

    def __init__(self, fake: FakeIntentService, data_dir: Path) -> None:
        self.fake = fake
        self.env = {"YIJU_DATA_DIR": str(data_dir)}
        self.made: list[tuple[str, str | None]] = []

    def factory(self, base_url: str, token: str | None) -> YijuClient:
        self.made.append((base_url, token))
        return YijuClient(base_url, token=token, transport=self.fake.transport(), retry=NO_RETRY)

    def __call__(self, *argv: str) -> int:
        return main(list(argv), client_factory=self.factory, env=self.env)


@pytest.fixture
def fake() -> FakeIntentService:
    return FakeIntentService()


@pytest.fixture
def cli(fake: FakeIntentService, tmp_path: Path) -> Cli:
    return Cli(fake, tmp_path)


def write_credentials(cli: Cli, content: str) -> None:
    Path(cli.env["YIJU_DATA_DIR"], "credentials.json").write_text(content, encoding="utf-8")


# --- order ------------------------------------------------------------------------------------------------


def test_order_without_wait_prints_the_acceptance(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("order", "两杯拿铁", "--user", "u-1002", "--json") == exitcodes.OK
    out = capsys.readouterr().out
    assert json.loads(out) == {"order_id": "o-1", "status": "ACCEPTED"}
    assert cli.fake.paths() == ["POST /v1/intents"]


def test_order_summary_without_wait(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("order", "两杯拿铁", "--user", "u-1002", "--key", "k-42") == exitcodes.OK
    out = capsys.readouterr().out
    assert "Accepted o-1" in out and "ACCEPTED" in out and "k-42" in out and "yiju watch o-1" in out
    assert json.loads(cli.fake.requests[0].content)["idempotency_key"] == "k-42"


def test_order_wait_json_is_pretty_and_unescaped(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("order", "两杯大杯拿铁和一个可颂", "--user", "u-1002", "--wait", "--json") == exitcodes.OK
    out = capsys.readouterr().out
    order = json.loads(out)
    assert order["status"] == "COMPLETED" and order["total_fen"] == 4350
    assert "两杯大杯拿铁和一个可颂" in out and "\\u" not in out  # ensure_ascii=False
    assert out.startswith('{\n  "order_id": "o-1"')  # indented


def test_order_wait_summary(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli("order", "两杯大杯拿铁和一个可颂", "--user", "u-1002", "--wait", "--locale", "zh-CN")
    assert code == exitcodes.OK
    out = capsys.readouterr().out
    for expected in (
        "Order o-1",
        "COMPLETED",
        "两杯大杯拿铁和一个可颂",
        "cafe-latte-l",
        "¥18.00",  # unit price
        "¥36.00",  # line total
        "¥12.50",
        "Subtotal",
        "¥48.50",
        "-¥5.00",  # subsidy
        "¥43.50",  # total
        "CAPTURED",
        "prov-cafe-latte-l",
        "4bf92f3577b34da6a3ce929d0e0e4736",  # trace id
    ):
        assert expected in out, expected
    assert json.loads(cli.fake.requests[0].content)["locale"] == "zh-CN"


@pytest.mark.parametrize(
    ("final", "reason"),
    [
        (S.REJECTED, "暂不支持购买处方药"),
        (S.NEEDS_CLARIFICATION, "请问要几杯？"),
        (S.PAYMENT_DECLINED, None),
        (S.FAILED, None),
    ],
)
def test_order_wait_ending_in_failure_exits_1(
    fake: FakeIntentService, cli: Cli, capsys: pytest.CaptureFixture[str], final: str, reason: str | None
) -> None:
    fake.plan = lambda user_id, text: (S.ACCEPTED, S.PLANNED, final)
    fake.reason = reason
    assert cli("order", "买点东西", "--user", "u-1002", "--wait") == exitcodes.ORDER_FAILED
    out = capsys.readouterr().out
    assert final in out
    if reason:
        assert f"Reason: {reason}" in out


def test_order_wait_for_confirmation_exits_0_with_a_hint(
    fake: FakeIntentService, cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.plan = lambda user_id, text: (S.ACCEPTED, S.PLANNED, S.AWAITING_CONFIRMATION)
    assert cli("order", "订一张机票", "--user", "u-1002", "--wait") == exitcodes.OK
    out = capsys.readouterr().out
    assert "AWAITING_CONFIRMATION" in out and "yiju confirm o-1" in out


def test_order_wait_timeout_exits_4(
    fake: FakeIntentService, cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.plan = lambda user_id, text: (S.PLANNED, S.COMPLETED)
    fake.stall = True
    fake.advance_on_poll = False
    assert cli("order", "两杯拿铁", "--user", "u-1002", "--wait", "--timeout", "0.2") == exitcodes.TIMEOUT
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "timed out after 0.2s waiting for order o-1; last status PLANNED" in captured.err


def test_order_needs_a_user(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("order", "两杯拿铁") == exitcodes.USAGE
    assert "--user" in capsys.readouterr().err
    assert cli.fake.requests == []


def test_order_user_from_environment(cli: Cli) -> None:
    cli.env["YIJU_USER"] = "u-2001"
    assert cli("order", "两杯拿铁") == exitcodes.OK
    assert json.loads(cli.fake.requests[0].content)["user_id"] == "u-2001"


def test_empty_sentence_is_a_usage_error(cli: Cli) -> None:
    assert cli("order", "   ", "--user", "u-1002") == exitcodes.USAGE


def test_server_validation_error_exits_3(
    fake: FakeIntentService, cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.fail(422, body={"error": {"code": "text_too_long", "message": "句子太长了"}})
    assert cli("order", "两杯拿铁", "--user", "u-1002") == exitcodes.API_ERROR
    err = capsys.readouterr().err
    assert "句子太长了" in err and "422" in err and "text_too_long" in err


def test_rate_limited_exits_3_with_retry_after(
    fake: FakeIntentService, cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.fail(
        429, headers={"Retry-After": "12"}, body={"error": {"code": "rate_limited", "message": "slow down"}}
    )
    assert cli("order", "两杯拿铁", "--user", "u-1002") == exitcodes.API_ERROR
    assert "slow down" in (err := capsys.readouterr().err) and "retry after 12s" in err


def test_unreachable_service_exits_3(
    fake: FakeIntentService, cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.fail(exception=httpx.ConnectError("connection refused"))
    assert cli("status", "o-1") == exitcodes.API_ERROR
    assert "cannot reach the intent service" in capsys.readouterr().err


# --- credentials and base URL ------------------------------------------------------------------------------


def test_token_comes_from_the_credentials_file(cli: Cli) -> None:
    write_credentials(cli, json.dumps({"users": {"u-1002": {"token": "tok-1002"}, "u-2": {"token": "x"}}}))
    cli.fake.tokens = {"tok-1002": "u-1002"}
    assert cli("order", "两杯拿铁", "--user", "u-1002", "--wait") == exitcodes.OK
    assert all(r.headers["authorization"] == "Bearer tok-1002" for r in cli.fake.requests)


def test_no_credentials_file_means_no_token(cli: Cli) -> None:
    assert cli("order", "两杯拿铁", "--user", "u-1002") == exitcodes.OK
    assert cli.made[0][1] is None
    assert "authorization" not in cli.fake.requests[0].headers


def test_unknown_user_and_unauthenticated(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    write_credentials(cli, json.dumps({"users": {"u-1002": {"token": "tok-1002"}}}))
    cli.fake.tokens = {"tok-1002": "u-1002"}
    assert cli("order", "两杯拿铁", "--user", "u-9999") == exitcodes.API_ERROR
    assert "missing or invalid credentials" in capsys.readouterr().err


def test_malformed_credentials_file_warns(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    write_credentials(cli, "{not json")
    assert cli("status", "o-1", "--user", "u-1002") == exitcodes.API_ERROR  # 404: the order is unknown
    assert "warning: cannot read" in capsys.readouterr().err
    assert cli.made[0][1] is None


def test_explicit_token_wins(cli: Cli) -> None:
    write_credentials(cli, json.dumps({"users": {"u-1002": {"token": "from-file"}}}))
    cli("--token", "explicit", "order", "两杯拿铁", "--user", "u-1002")
    assert cli.made[0][1] == "explicit"


def test_api_url_option_and_environment(cli: Cli) -> None:
    cli("--api-url", "http://api.test:9999/", "order", "两杯拿铁", "--user", "u-1002")
    cli.env["YIJU_API_URL"] = "http://env.test"
    cli("order", "两杯拿铁", "--user", "u-1002")
    del cli.env["YIJU_API_URL"]
    cli.env["YIJU_HTTP_PORT"] = "8123"
    cli("order", "两杯拿铁", "--user", "u-1002")
    assert [base for base, _ in cli.made] == [
        "http://api.test:9999",
        "http://env.test",
        "http://127.0.0.1:8123",
    ]
    assert str(cli.fake.requests[0].url) == "http://api.test:9999/v1/intents"


# --- status / confirm / cancel / watch ---------------------------------------------------------------------


def test_status_json_exits_0_whatever_the_status(
    fake: FakeIntentService, cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    order_id = fake.add_order([S.FAILED])
    assert cli("status", order_id, "--json") == exitcodes.OK
    assert json.loads(capsys.readouterr().out)["status"] == "FAILED"


def test_status_summary(fake: FakeIntentService, cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    order_id = fake.add_order([S.AUTHORIZED])
    assert cli("status", order_id) == exitcodes.OK
    out = capsys.readouterr().out
    assert "AUTHORIZED" in out and "authorized ¥43.50, captured ¥0.00" in out


def test_status_of_unknown_order_exits_3(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("status", "o-missing") == exitcodes.API_ERROR
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no order o-missing" in captured.err and "404" in captured.err


def test_confirm(fake: FakeIntentService, cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    order_id = fake.add_order([S.AWAITING_CONFIRMATION])
    assert cli("confirm", order_id, "--user", "u-1002") == exitcodes.OK
    assert "AUTHORIZED" in capsys.readouterr().out
    assert fake.paths() == [f"POST /v1/orders/{order_id}/confirm"]


def test_confirm_and_wait(fake: FakeIntentService, cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    order_id = fake.add_order([S.AWAITING_CONFIRMATION])
    assert cli("confirm", order_id, "--wait", "--json") == exitcodes.OK
    assert json.loads(capsys.readouterr().out)["status"] == "COMPLETED"


def test_confirm_conflict_exits_3(
    fake: FakeIntentService, cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    order_id = fake.add_order([S.COMPLETED])
    assert cli("confirm", order_id) == exitcodes.API_ERROR
    assert f"order {order_id} is COMPLETED" in capsys.readouterr().err


def test_cancel(fake: FakeIntentService, cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    order_id = fake.add_order([S.AWAITING_CONFIRMATION])
    assert cli("cancel", order_id, "--json") == exitcodes.OK
    assert json.loads(capsys.readouterr().out)["status"] == "CANCELLED"
    assert cli("cancel", order_id) == exitcodes.API_ERROR


def test_watch_prints_each_status_change(
    fake: FakeIntentService, cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    order_id = fake.add_order([S.ACCEPTED, S.PLANNED, S.AUTHORIZED, S.FULFILLED, S.COMPLETED])
    assert cli("watch", order_id) == exitcodes.OK
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == [
        "ACCEPTED",
        "PLANNED",
        "AUTHORIZED",
        "FULFILLED",
        "COMPLETED",
    ]
    assert "total ¥43.50" in lines[-1]


def test_watch_json_lines_and_failure(
    fake: FakeIntentService, cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    order_id = fake.add_order([S.ACCEPTED, S.REJECTED], reason="不支持")
    assert cli("watch", order_id, "--json") == exitcodes.ORDER_FAILED
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["status"] for line in lines] == ["ACCEPTED", "REJECTED"]


def test_watch_stops_at_waiting(
    fake: FakeIntentService, cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    order_id = fake.add_order([S.ACCEPTED, S.AWAITING_CONFIRMATION])
    assert cli("watch", order_id) == exitcodes.OK
    assert f"yiju confirm {order_id}" in capsys.readouterr().out


def test_watch_timeout(fake: FakeIntentService, cli: Cli) -> None:
    order_id = fake.add_order([S.PLANNED])
    fake.stall = True
    assert cli("watch", order_id, "--timeout", "0.2") == exitcodes.TIMEOUT


def test_health(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("health") == exitcodes.OK
    assert json.loads(capsys.readouterr().out) == {"status": "ok"}


# --- usage ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["status"],
        ["order", "x", "--user", "u", "--timeout", "-1"],
        ["order", "x", "--user", "u", "--timeout", "soon"],
        ["watch", "o-1", "--bogus"],
    ],
)
def test_usage_errors_exit_2(cli: Cli, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(*argv) == exitcodes.USAGE
    assert "usage:" in capsys.readouterr().err
    assert cli.fake.requests == []


def test_version_and_help(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("--version") == exitcodes.OK
    assert capsys.readouterr().out.strip() == f"yiju {package_version()}"
    assert cli("--help") == exitcodes.OK
    out = capsys.readouterr().out
    for command in ("order", "status", "confirm", "cancel", "watch"):
        assert command in out


def test_cny() -> None:
    assert [cny(v) for v in (1800, 5, 0, -500, 123456)] == ["¥18.00", "¥0.05", "¥0.00", "-¥5.00", "¥1234.56"]


# --- the command registry ----------------------------------------------------------------------------------


def test_command_modules_are_discovered_and_broken_ones_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "extra_yiju_commands"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "hello.py").write_text(
        "PRIORITY = 1\n"
        "def register(subparsers):\n"
        "    subparsers.add_parser('hello').set_defaults(handler=lambda args, ctx: 0)\n"
    )
    (package / "broken.py").write_text("raise RuntimeError('boom')\n")
    (package / "_private.py").write_text("raise RuntimeError('never imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    errors: list[str] = []
    parser = argparse.ArgumentParser()
    names = register_all(
        parser.add_subparsers(dest="command"),
        lambda name, exc: errors.append(f"{name}: {exc}"),
        package="extra_yiju_commands",
    )
    assert names == ["hello"]
    assert errors == ["broken: boom"]
    assert parser.parse_args(["hello"]).command == "hello"
