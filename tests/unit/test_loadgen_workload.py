"""The load generator's pieces that need no platform: sentences, profiles, percentiles, bookkeeping."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import pytest

from yiju.cli.commands import load as load_command
from yiju.common.catalog import (
    SYNTHETIC_LIMIT_FEN,
    Catalog,
    load_catalog,
    synthetic_user_id,
)
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.loadgen.profiles import Constant, Ramp, Spike, Steps, arrivals, expected_count, parse_steps
from yiju.loadgen.stats import percentile, summarize
from yiju.loadgen.users import UserPool
from yiju.loadgen.watcher import COMPLETED, Track, Tracker
from yiju.loadgen.workload import Workload, candidate_sentences, is_cjk

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def big_catalog() -> Catalog:
    return load_catalog(REPO / "catalog", 3)


def test_synthetic_users_are_added_after_the_demo_users(big_catalog: Catalog) -> None:
    plain = load_catalog(REPO / "catalog")
    assert set(plain.users) < set(big_catalog.users)
    added = [u for u in big_catalog.users if u not in plain.users]
    assert added == [synthetic_user_id(n) for n in (1, 2, 3)]
    assert added == ["load-u-000001", "load-u-000002", "load-u-000003"]
    user = big_catalog.users["load-u-000002"]
    assert user.spend_limit_per_order_fen == user.confirm_above_fen == SYNTHETIC_LIMIT_FEN
    assert user.wallet_fen >= 1000 * SYNTHETIC_LIMIT_FEN and set(user.addresses) == {"home", "office"}
    assert big_catalog.version == plain.version  # the files define the catalog's version


def test_sentences_come_from_catalog_terms_in_both_languages(big_catalog: Catalog) -> None:
    candidates = candidate_sentences(big_catalog)
    terms = {t for p in big_catalog.products.values() for t in p.terms}
    assert all(any(term in s.text for term in terms) for s in candidates)
    assert {s.locale for s in candidates} == {"en-SG", "zh-CN"}
    assert all(is_cjk(s.text) == (s.locale == "zh-CN") for s in candidates)


def test_every_kept_sentence_becomes_a_plan_under_the_rules_backend(big_catalog: Catalog) -> None:
    workload = Workload.from_catalog(big_catalog, big_catalog.users["load-u-000001"])
    assert len(workload.sentences) > 500
    assert all(s.skus and s.total_fen > 0 for s in workload.sentences)
    verticals = {big_catalog.products[sku].vertical for s in workload.sentences for sku in s.skus}
    assert verticals == {"food", "grocery", "retail", "ride", "travel"}
    capped = Workload.from_catalog(big_catalog, big_catalog.users["u-1004"], max_total_fen=10_000)
    assert all(s.total_fen <= 10_000 for s in capped.sentences)


def test_draws_are_zipf_like_and_reproducible(big_catalog: Catalog) -> None:
    user = big_catalog.users["load-u-000001"]
    one = Workload.from_catalog(big_catalog, user, seed=5)
    two = Workload.from_catalog(big_catalog, user, seed=5)
    draws = [one.draw().text for _ in range(20_000)]
    assert draws[:50] == [two.draw().text for _ in range(50)]
    counts = Counter(draws).most_common()
    top10 = sum(n for _, n in counts[:10]) / len(draws)
    assert abs(top10 - one.share_of_top(10)) < 0.03
    assert counts[0][1] > 10 * counts[len(counts) // 2][1]  # popular sentences dominate


def test_profiles_and_open_loop_arrivals() -> None:
    assert len(list(arrivals(Constant(50, 10)))) == 500
    assert expected_count(Constant(50, 10)) == 500
    ramp = Ramp(10, 110, 10)
    assert ramp.rate(0) == 10 and ramp.rate(5) == 60 and ramp.rate(20) == 110
    spike = Spike(100, 60, factor=10, at_s=10, rise_s=10, hold_s=10)
    assert spike.rate(5) == 100 and spike.rate(15) == pytest.approx(550) and spike.rate(25) == 1000
    assert spike.rate(59) == 100
    assert Spike(100, 60, rise_s=30).rise_s == 30  # the profile itself takes any rise; the CLI caps it
    steps = parse_steps("100:30,400:15")
    assert steps == Steps(((100.0, 30.0), (400.0, 15.0))) and steps.duration_s == 45
    assert steps.rate(29) == 100 and steps.rate(31) == 400
    times = list(arrivals(Constant(100, 5), poisson=True, seed=3))
    assert 400 < len(times) < 600 and times == sorted(times)
    with pytest.raises(ValueError):
        parse_steps("100")


def test_percentiles() -> None:
    assert percentile([], 99) == 0
    values = list(range(1, 101))
    assert percentile(values, 50) == 50 and percentile(values, 99) == 99 and percentile(values, 100) == 100
    stats = summarize([5.0, 1.0, 3.0])
    assert stats["p50"] == 3.0 and stats["max"] == 5.0 and stats["mean"] == 3.0


def test_user_pool_draws_every_user() -> None:
    pool = UserPool(50, seed=1)
    assert len(pool) == 50 and pool.ids[0] == "load-u-000001"
    assert len({pool.draw() for _ in range(2000)}) == 50
    with pytest.raises(ValueError):
        UserPool(0)


def _accepted(key: str, order_id: str) -> bytes:
    return ev.IntentAccepted(order_id=order_id, idempotency_key=key, accepted_at_ms=1_000).SerializeToString()


def test_tracker_matches_orders_and_counts_duplicates() -> None:
    tracker = Tracker("load-r1-", start_ms=0)
    first, second = Track("load-r1-1", "u", 0, 900.0), Track("load-r1-2", "u", 0, 950.0)
    tracker.add(first)
    tracker.add(second)
    captured = ev.PaymentCaptured(order_id="o1", amount_fen=4200).SerializeToString()
    # The terminal event may be read before the accepted one: it waits for its order id.
    tracker.on_terminal("yiju.payment.captured.v1", b"o1", captured, [("ce_id", b"e1")], 1_500)
    tracker.on_accepted(_accepted("load-r1-1", "o1"), 1_000)
    assert first.status == COMPLETED and first.done_ms - first.intended_ms == 600 and first.amount_fen == 4200
    tracker.on_terminal("yiju.payment.captured.v1", b"o1", captured, [("ce_id", b"e1")], 1_600)
    assert tracker.counters.redelivered == 1 and first.duplicates == 0
    tracker.on_accepted(_accepted("load-r1-1", "o9"), 1_000)  # the same sentence became a second order
    assert tracker.counters.duplicate_orders == 1 and first.duplicates == 1
    tracker.on_accepted(_accepted("other-run-1", "o5"), 1_000)  # not ours
    assert "o5" not in tracker.by_order
    tracker.on_dead_letter(b"load-r1-2", [("x-dlq-error-message", b"unknown user")])
    assert second.error.startswith("intake_dead_letter") and tracker.unsettled == 0


def test_the_load_command_registers_its_options() -> None:
    parser = argparse.ArgumentParser()
    load_command.register(parser.add_subparsers())
    args = parser.parse_args(["load", "--via", "grpc", "--profile", "spike", "--rate", "50"])
    assert (args.via, args.profile, args.rate, args.factor) == ("grpc", "spike", 50.0, 10.0)
