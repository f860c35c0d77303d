"""Group-committed feedback: many people rating at once land exactly as if one by one."""

from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy import func, select

from trainerbot.core import Caller, CoreService
from trainerbot.errors import NotFound
from trainerbot.store.tables import DatasetItem, Feedback


@pytest.fixture
def core(core_on_both_stores: CoreService) -> CoreService:
    """Every test here runs on SQLite and on PostgreSQL."""
    return core_on_both_stores


async def test_concurrent_ratings_match_a_sequential_replay(core: CoreService, trainer: Caller) -> None:
    core.rate.per_minute = 10**9  # this test is about the store, not the rate limit
    users = [Caller(guild_id="111", guild_name="Guild A", user_id=f"u{i}", channel_id="c1") for i in range(40)]
    for m in range(5):
        await core.delivery.record_exchange(trainer, f"question {m}?", f"answer {m}", reply_message_id=f"m{m}")
    rng = random.Random(3)
    plans = {u.user_id: [(f"m{rng.randrange(5)}", rng.choice("👍👎"), rng.random() < 0.7) for _ in range(15)] for u in users}

    async def person(user: Caller) -> list[str]:
        return [(await core.feedback.react(user, mid, emoji, added=added)).content for mid, emoji, added in plans[user.user_id]]
    said = dict(zip(plans, await asyncio.gather(*(person(u) for u in users)), strict=True))
    assert core.ingest.batches < sum(len(p) for p in plans.values())  # events really shared transactions

    expected: dict[tuple[str, str], str] = {}  # each person's own events, replayed in order
    for uid, plan in plans.items():
        replies = []
        for mid, emoji, added in plan:
            label = "positive" if emoji == "👍" else "negative"
            current = expected.get((mid, uid))
            if not added:
                replies.append("Rating removed." if current == label else "Nothing to remove.")
                if current == label:
                    del expected[(mid, uid)]
            elif current == label:
                replies.append("Already rated.")
            else:
                expected[(mid, uid)] = label
                replies.append(f"Rated {emoji} — thanks.")
        assert said[uid] == replies, uid
    with core.store.read() as s:
        rows = s.execute(select(Feedback.user_id, Feedback.label, Feedback.message_id)).all()
        items = s.execute(select(DatasetItem.author_id, DatasetItem.label, DatasetItem.source_ref)).all()
    assert len(rows) == len(expected) == len(items)  # no lost, no duplicated rows
    assert sorted((u, lab) for u, lab, _ in rows) == sorted((uid, lab) for (_, uid), lab in expected.items())
    assert sorted((u, lab, ref) for u, lab, ref in items) == sorted(
        (uid, lab, f"reaction:{mid}") for (mid, uid), lab in expected.items()
    )


async def test_an_unknown_reply_fails_alone_within_a_batch(core: CoreService, trainer: Caller, member: Caller) -> None:
    await core.delivery.record_exchange(trainer, "q?", "a", reply_message_id="m1")
    results = await asyncio.gather(
        core.feedback.react(member, "m1", "👍"),
        core.feedback.react(member, "nope", "👍"),
        core.feedback.leave(member, "good bot"),
        return_exceptions=True,
    )
    assert results[0].content.startswith("Rated") and isinstance(results[1], NotFound) and "noted" in results[2].content
    with core.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Feedback)) == 2
