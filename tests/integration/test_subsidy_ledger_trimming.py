"""The campaign subsidy ledger stream is bounded (XADD MAXLEN ~) and `yiju reconcile` stays exact over a
trimmed one. Real Redis (a server of this module's own), the real scripts; Kafka's events are left out
(reconcile's event reader is replaced by an empty view: the ledger alone must prove the budget)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from yiju.common import reconcile as rec
from yiju.common.catalog import Campaign
from yiju.common.ledger_replay import replay_subsidy_ledger
from yiju.common.settings import Settings
from yiju.planning.subsidy import Subsidies, budget_key, grant_key, ledger_key, ledger_seq_key
from yiju_infra.chaos.checks import Findings, _double_subsidies

pytestmark = pytest.mark.integration
USERS = 40


@pytest.fixture
async def redis(scratch_redis: aioredis.Redis) -> aioredis.Redis:
    # Small stream nodes, so MAXLEN ~ trims at a few dozen entries (it drops whole nodes only).
    await scratch_redis.config_set("stream-node-max-entries", 10)
    return scratch_redis


@pytest.fixture
def no_events(monkeypatch: pytest.MonkeyPatch) -> None:
    async def read_events(settings: Settings, *, timeout_s: float = 120.0) -> tuple[rec.EventsView, int]:
        return rec.EventsView(), 0

    monkeypatch.setattr(rec, "read_events", read_events)


def _campaign() -> Campaign:
    return Campaign(
        id=f"ledger-{uuid.uuid4().hex[:8]}",
        name="ledger",
        min_order_fen=3000,
        discount_fen=1000,
        budget_fen=10**8,
        per_user_max_uses=3,
    )


async def _busy_campaign(subsidies: Subsidies) -> int:
    """Grants, releases and grants again, concurrently, for USERS users; the ledger entries written."""
    first = await asyncio.gather(*(subsidies.reserve(f"a{i}", f"u{i % USERS}", 5000) for i in range(150)))
    released = await asyncio.gather(*(subsidies.release(f"a{i}", f"u{i % USERS}") for i in range(0, 150, 2)))
    again = await asyncio.gather(*(subsidies.reserve(f"b{i}", f"u{i % USERS}", 5000) for i in range(150)))
    return sum(1 for g in [*first, *released, *again] if g)


async def _uses(redis: aioredis.Redis, campaign: Campaign) -> dict[str, int]:
    return {f"u{i}": int(await redis.get(f"subsidy:{{{campaign.id}}}:uses:u{i}") or 0) for i in range(USERS)}


async def test_a_trimmed_subsidy_ledger_still_proves_the_budget(
    redis: aioredis.Redis, no_events: None
) -> None:
    campaign = _campaign()
    subsidies = Subsidies(redis, campaign, 3600, ledger_maxlen=20)
    await subsidies.initialise()
    written = await _busy_campaign(subsidies)
    entries = [fields for _, fields in await redis.xrange(ledger_key(campaign.id))]
    assert written > 200 and len(entries) < written / 2  # trimmed to about 20 (whole stream nodes go)
    assert int(entries[-1]["seq"]) == written == int(await redis.get(ledger_seq_key(campaign.id)))
    replay = replay_subsidy_ledger(entries, campaign.budget_fen)
    assert replay.trimmed and replay.breaks == []
    assert replay.budget_left == await subsidies.budget_left()
    stored_uses = await _uses(redis, campaign)
    assert replay.uses and all(stored_uses[user] == n for user, n in replay.uses.items())

    report = await rec.reconcile(Settings(), redis, campaign)
    assert report.differences == [], [str(d) for d in report.differences]
    assert report.campaign["ledger_trimmed"] and report.campaign["budget_left_ledger"] == replay.budget_left
    assert await _double_subsidies(redis, campaign, Findings()) == 0

    # A hole in what is kept, a budget moved outside the scripts, a use count off: each is a difference.
    ids = [entry_id for entry_id, _ in await redis.xrange(ledger_key(campaign.id))]
    await redis.xdel(ledger_key(campaign.id), ids[len(ids) // 2])
    assert any(d.field == "chain" for d in (await rec.reconcile(Settings(), redis, campaign)).differences)
    await redis.xdel(ledger_key(campaign.id), ids[-1])  # the newest entry gone too
    chain = [
        d.ledger for d in (await rec.reconcile(Settings(), redis, campaign)).differences if d.field == "chain"
    ]
    assert any("missing at the end" in gap for gap in chain)
    await redis.flushdb()
    subsidies = Subsidies(redis, campaign, 3600, ledger_maxlen=20)
    await subsidies.initialise()
    await _busy_campaign(subsidies)
    await redis.incrby(budget_key(campaign.id), 1000)
    # (a trimmed ledger knows the use counts of the users it kept an entry of: the last entry's user)
    _, last = (await redis.xrevrange(ledger_key(campaign.id), count=1))[0]
    await redis.incr(f"subsidy:{{{campaign.id}}}:uses:{last['user']}")
    diffs = (await rec.reconcile(Settings(), redis, campaign)).differences
    assert {(d.scope, d.field, d.diff_fen) for d in diffs} == {
        (f"campaign:{campaign.id}", "budget_left", 1000),
        (f"campaign:{campaign.id}:uses:{last['user']}", "uses", 0),
    }


async def test_the_sequence_counts_the_entries_written_before_it(redis: aioredis.Redis) -> None:
    """A ledger the old scripts wrote (no sequence, no totals, never trimmed) goes on numbered after
    its entries, and replays from the campaign's budget without a break."""
    campaign = _campaign()
    subsidies = Subsidies(redis, campaign, 3600, ledger_maxlen=0)
    await subsidies.initialise()
    for order in ("old1", "old2"):  # what subsidy_reserve.lua wrote before
        await redis.decrby(budget_key(campaign.id), 1000)
        await redis.incr(f"subsidy:{{{campaign.id}}}:uses:u1")
        await redis.set(grant_key(campaign.id, order), "1000")
        fields = {"type": "subsidy_granted", "order": order, "user": "u1", "amount": "1000"}
        await redis.xadd(ledger_key(campaign.id), fields)  # type: ignore[arg-type]
    assert await subsidies.reserve("new", "u1", 5000) == 1000
    assert await subsidies.release("old1", "u1") == 1000
    entries = [fields for _, fields in await redis.xrange(ledger_key(campaign.id))]
    assert [e.get("seq") for e in entries] == [None, None, "3", "4"]
    assert entries[-1]["budget"] == str(campaign.budget_fen - 2000) and entries[-1]["uses"] == "2"
    replay = replay_subsidy_ledger(entries, campaign.budget_fen)
    assert not replay.trimmed and replay.breaks == []
    assert replay.budget_left == await subsidies.budget_left() and replay.uses == {"u1": 2}


async def test_a_maxlen_of_zero_keeps_every_entry(redis: aioredis.Redis) -> None:
    campaign = _campaign()
    subsidies = Subsidies(redis, campaign, 3600, ledger_maxlen=0)
    await subsidies.initialise()
    written = await _busy_campaign(subsidies)
    assert await redis.xlen(ledger_key(campaign.id)) == written
    replay = replay_subsidy_ledger(
        [fields for _, fields in await redis.xrange(ledger_key(campaign.id))], campaign.budget_fen
    )
    assert not replay.trimmed and replay.breaks == [] and replay.budget_left == await subsidies.budget_left()
