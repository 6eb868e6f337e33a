"""A CI-sized chaos run (`make chaos` is the full one): 300 sentences while services and Redis are
killed with SIGKILL; nothing may be lost and no money may move twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from yiju_infra.chaos.run import MUST_BE_ZERO, ChaosConfig, run_chaos

pytestmark = pytest.mark.integration


async def test_kill_9_chaos_loses_nothing_and_moves_no_money_twice(tmp_path: Path) -> None:
    config = ChaosConfig(
        sentences=300,
        rate=20,
        kill_every_s=4,
        redis_at=(0.4,),
        synthetic_users=50,
        sweep_after_s=20,
        confirmation_ttl_s=8,
        settle_timeout_s=180,
        data_dir=tmp_path / "platform",
        report_path=tmp_path / "chaos-report.json",
        progress=False,
    )
    report = await run_chaos(config)
    assert report["kills"] >= 3 and report["kills_by_target"].get("redis", 0) >= 1, report["kill_log"]
    assert report["submitted"] == report["reached_terminal"] == 300, report["examples"]
    assert {k: report[k] for k in MUST_BE_ZERO} == dict.fromkeys(MUST_BE_ZERO, 0), report["examples"]
    assert report["ok"]
