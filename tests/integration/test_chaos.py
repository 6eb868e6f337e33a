"""A CI-sized chaos run (`make chaos` is the full one): 300 sentences while the Kafka broker, Redis and
every service are killed with SIGKILL; nothing may be lost and no money may move twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from yiju_infra.chaos.run import MUST_BE_ZERO, ChaosConfig, run_chaos
from yiju_infra.local.platform import SERVICES

pytestmark = pytest.mark.integration


async def test_kill_9_chaos_loses_nothing_and_moves_no_money_twice(tmp_path: Path) -> None:
    config = ChaosConfig(
        sentences=300,
        rate=10,  # 30 s of submission: room for a broker restart, a Redis restart and five services
        kill_every_s=1,
        broker_kills=1,
        redis_kills=1,
        service_kills=1,
        synthetic_users=50,
        sweep_after_s=20,
        confirmation_ttl_s=8,
        settle_timeout_s=180,
        recover_timeout_s=120,
        data_dir=tmp_path / "platform",
        report_path=tmp_path / "chaos-report.json",
        progress=False,
    )
    report = await run_chaos(config)
    kills = report["kills_by_process"]
    minimums = report["kill_minimums"]
    assert report["scaled_down"] and report["kill_minimums_met"], (minimums, report["kill_log"])
    if report["broker"]["durable"]:  # Apache Kafka (the tansu fallback keeps its log in memory)
        assert kills.get("broker", 0) >= 1, report["kill_log"]
    assert kills.get("redis", 0) >= 1 and all(kills.get(s, 0) >= 1 for s in SERVICES), report["kill_log"]
    assert report["submitted"] == report["reached_terminal"] == 300, report["examples"]
    assert {k: report[k] for k in MUST_BE_ZERO} == dict.fromkeys(MUST_BE_ZERO, 0), report["examples"]
    # A loss the sweeper covered up still counts: every order ended as its sentence should have, and the
    # sweeper settled only the confirmations the workload left to expire.
    assert report["unexpected_outcomes"] == {}, report["examples"]
    assert set(report["settled_by_sweeper_by_kind"]) <= {"expire"}, report["examples"]
    assert report["ok"]
