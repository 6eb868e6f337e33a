"""`make bench` runs each step on a fresh platform; the end-of-run checks of all of them read as one."""

from __future__ import annotations

from yiju_infra.bench.pipeline import merge_checks


def test_counts_add_up_verdicts_must_all_hold_and_the_burst_is_kept() -> None:
    step = {
        "lost": 0,
        "duplicated": 1,
        "projection": {
            "checked": 10,
            "completed": 10,
            "mismatched": 0,
            "mismatched_statuses": {},
            "examples": [],
        },
        "money": {"users": 100, "captured_fen": 500, "charged_fen": 500, "ok": True, "examples": []},
        "restarts": {},
        "capacity": None,
    }
    burst = {
        "lost": 2,
        "duplicated": 0,
        "projection": {
            "checked": 5,
            "completed": 4,
            "mismatched": 1,
            "mismatched_statuses": {"AUTHORIZED": 1},
            "examples": ["o-1"],
        },
        "money": {"users": 100, "captured_fen": 300, "charged_fen": 301, "ok": False, "examples": ["u-9"]},
        "restarts": {"payment": 1},
        "capacity": {"sentences_per_s": 250.0},
    }
    merged = merge_checks([step, burst])
    assert (merged["lost"], merged["duplicated"]) == (2, 1)
    assert merged["projection"] == {
        "checked": 15,
        "completed": 14,
        "mismatched": 1,
        "mismatched_statuses": {"AUTHORIZED": 1},
        "examples": ["o-1"],
    }
    assert merged["money"] == {
        "users": 100,
        "captured_fen": 800,
        "charged_fen": 801,
        "ok": False,
        "examples": ["u-9"],
    }
    assert merged["restarts"] == {"payment": 1} and merged["capacity"] == {"sentences_per_s": 250.0}
