"""The chaos verdict sees a loss the sweeper covered up: unexpected endings and unexpected sweeps count."""

from __future__ import annotations

from yiju_infra.chaos.checks import Findings, judge_outcomes
from yiju_infra.chaos.driver import Submission
from yiju_infra.chaos.run import MUST_BE_ZERO
from yiju_infra.chaos.workload import Kind, Sentence


def _sub(n: int, kind: Kind) -> Submission:
    sentence = Sentence(index=n, kind=kind, user_id="u-1004", text="one latte", idempotency_key=f"k{n}")
    return Submission(sentence=sentence, order_id=f"ord_{n}")


def _judge(statuses: dict[str, str | None], reasons: dict[str, str | None], *subs: Submission) -> Findings:
    findings = Findings()
    judge_outcomes(list(subs), statuses, reasons, findings)
    return findings


def test_every_order_ending_as_expected_passes() -> None:
    ok, expired = _sub(1, Kind.SUCCESS), _sub(2, Kind.EXPIRE)
    findings = _judge(
        {"ord_1": "COMPLETED", "ord_2": "CANCELLED"}, {"ord_2": "confirmation expired"}, ok, expired
    )
    f = findings.figures
    assert f["unexpected_outcome_count"] == 0 and f["unexpected_sweeps"] == 0
    assert f["settled_by_sweeper"] == 1 and f["settled_by_sweeper_by_kind"] == {"expire": 1}
    assert "unexpected_sweeps" not in findings.examples


def test_a_success_the_sweeper_cancelled_is_a_loss_even_though_it_is_terminal() -> None:
    swept = _sub(1, Kind.SUCCESS)
    findings = _judge({"ord_1": "CANCELLED"}, {"ord_1": "payment timed out"}, swept)
    f = findings.figures
    assert f["unexpected_outcomes"] == {"success:CANCELLED": 1}
    assert f["unexpected_outcome_count"] == 1
    assert f["unexpected_sweeps"] == 1
    assert findings.examples["unexpected_sweeps"] == [
        {"order": "ord_1", "kind": "success", "reason": "payment timed out"}
    ]


def test_a_decline_settled_by_the_sweeper_counts_even_with_the_expected_status() -> None:
    # FAILED is what a fail-kind sentence should end in, but by its injected delivery failure, not by a
    # fulfilment timeout: the sweeper settling it means the fulfilment step was lost.
    failed = _sub(1, Kind.FAIL)
    findings = _judge({"ord_1": "FAILED"}, {"ord_1": "fulfilment timed out"}, failed)
    assert findings.figures["unexpected_outcome_count"] == 0
    assert findings.figures["unexpected_sweeps"] == 1


def test_the_verdict_requires_both_counts_to_be_zero() -> None:
    assert {"unexpected_outcome_count", "unexpected_sweeps", "lost"} <= set(MUST_BE_ZERO)
