from __future__ import annotations

import pytest
from sqlalchemy import select

from trainerbot.core import Caller, CoreService
from trainerbot.errors import BadInput, Busy, NotFound
from trainerbot.store.tables import Correction, DatasetItem, Feedback


@pytest.fixture
def core(core_on_both_stores: CoreService) -> CoreService:
    """Every test here runs on SQLite and on PostgreSQL."""
    return core_on_both_stores


async def _reply(core: CoreService, caller: Caller, mid: str = "9001") -> int:
    """A reply to the Zorbia question, after a greeting in the same channel (its history)."""
    await core.delivery.record_exchange(caller, "hi", "hello", prompt_message_id=f"{mid}-0", reply_message_id=f"{mid}-1")
    return await core.delivery.record_exchange(
        caller,
        "What is the capital of Zorbia?",
        "Paris.",
        prompt_message_id="9000",
        reply_message_id=mid,
        context=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
    )


def _items(core: CoreService) -> list[DatasetItem]:
    with core.store.read() as s:
        return list(s.scalars(select(DatasetItem).order_by(DatasetItem.id)))


async def test_feedback_is_stored_with_its_author(core: CoreService, member: Caller) -> None:
    reply = await core.feedback.leave(member, "  answers are too short  ")
    assert "noted" in reply.content
    with core.store.read() as s:
        row = s.scalars(select(Feedback)).one()
    assert (row.kind, row.text, row.user_id) == ("text", "answers are too short", "u-member")


@pytest.mark.parametrize("text", ["", "   ", "x" * 2001])
async def test_feedback_refuses_empty_or_long_text(core: CoreService, member: Caller, text: str) -> None:
    with pytest.raises(BadInput):
        await core.feedback.leave(member, text)


async def test_trainer_correction_is_approved_and_becomes_a_dpo_pair(core: CoreService, trainer: Caller) -> None:
    await _reply(core, trainer)
    reply = await core.feedback.correct(trainer, "9001", "Quillport.")
    assert "approved" in reply.content
    with core.store.read() as s:
        corr = s.scalars(select(Correction)).one()
    assert (corr.prompt, corr.original, corr.corrected, corr.status) == (
        "What is the capital of Zorbia?",
        "Paris.",
        "Quillport.",
        "approved",
    )
    [item] = _items(core)
    assert (item.prompt, item.response, item.rejected, item.source) == (
        "What is the capital of Zorbia?",
        "Quillport.",
        "Paris.",
        "correction",
    )
    assert item.correction_id == corr.id and item.history == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    ]
    exported = await core.datasets.export(trainer, "feedback", "dpo")
    assert exported.files and b'"rejected": [{"role": "assistant", "content": "Paris."}]' in exported.files[0].path.read_bytes()


async def test_member_correction_waits_for_review(core: CoreService, trainer: Caller, member: Caller) -> None:
    await _reply(core, trainer)
    reply = await core.feedback.correct(member, "9001", "Quillport.")
    assert "review" in reply.content and reply.data["status"] == "pending"
    assert _items(core) == []


async def test_same_correction_twice_is_not_duplicated(core: CoreService, trainer: Caller) -> None:
    await _reply(core, trainer)
    first = await core.feedback.correct(trainer, "9001", "Quillport.")
    second = await core.feedback.correct(trainer, "9001", "Quillport.")
    assert second.data["correction_id"] == first.data["correction_id"]
    assert "already" in second.content
    assert len(_items(core)) == 1


@pytest.mark.parametrize("mid", ["424242", "9000"])  # unknown, and a user's message (not a bot reply)
async def test_correct_unknown_or_non_bot_message(core: CoreService, trainer: Caller, mid: str) -> None:
    await _reply(core, trainer)
    with pytest.raises(NotFound, match="don't know a reply"):
        await core.feedback.correct(trainer, mid, "text")


@pytest.mark.parametrize("mid,text", [("../1", "x"), ("12 34", "x"), ("1", ""), ("1", "x" * 9000)])
async def test_correct_refuses_bad_input(core: CoreService, trainer: Caller, mid: str, text: str) -> None:
    await _reply(core, trainer, "1")
    with pytest.raises(BadInput):
        await core.feedback.correct(trainer, mid, text)
    with core.store.read() as s:
        assert s.scalars(select(Correction)).all() == []


async def test_reactions_label_change_and_remove(core: CoreService, trainer: Caller, member: Caller) -> None:
    await _reply(core, trainer)
    assert (await core.feedback.react(member, "9001", "👍")).data["label"] == "positive"
    assert [(i.label, i.source) for i in _items(core)] == [("positive", "reaction")]
    assert "Already" in (await core.feedback.react(member, "9001", "👍")).content
    await core.feedback.react(member, "9001", "👎")  # changing the reaction changes the label
    assert [i.label for i in _items(core)] == ["negative"]
    assert "Nothing" in (await core.feedback.react(member, "9001", "👍", added=False)).content  # not the current one
    await core.feedback.react(member, "9001", "👎", added=False)
    assert _items(core) == []
    with core.store.read() as s:
        assert s.scalars(select(Feedback)).all() == []


async def test_each_user_rates_once_and_other_emoji_are_ignored(core: CoreService, trainer: Caller, member: Caller) -> None:
    await _reply(core, trainer)
    await core.feedback.react(member, "9001", "👍🏽")
    await core.feedback.react(trainer, "9001", "👎")
    assert await core.feedback.react(member, "9001", "🎉") is None
    assert sorted(i.label for i in _items(core)) == ["negative", "positive"]
    kto = await core.datasets.export(trainer, "feedback", "kto")
    rows = kto.files[0].path.read_text().splitlines()
    assert len(rows) == 2 and sum('"label": true' in r for r in rows) == 1


async def test_reaction_on_unknown_message(core: CoreService, member: Caller) -> None:
    with pytest.raises(NotFound):
        await core.feedback.react(member, "5555", "👍")


async def test_removing_a_reaction_keeps_the_archived_example(core: CoreService, trainer: Caller, member: Caller) -> None:
    await _reply(core, trainer)
    await core.feedback.react(member, "9001", "👍")
    await core.datasets.archive(trainer, "feedback")
    await core.feedback.react(member, "9001", "👍", added=False)
    items = _items(core)
    assert len(items) == 1 and items[0].archived_in is not None


async def test_feedback_is_rate_limited_per_user(core: CoreService, member: Caller, trainer: Caller) -> None:
    core.rate.per_minute = 2
    await core.feedback.leave(member, "one")
    await core.feedback.leave(member, "two")
    with pytest.raises(Busy, match="try again"):
        await core.feedback.leave(member, "three")
    await core.feedback.leave(trainer, "another user is fine")


async def test_bind_reply_sets_the_platform_id(core: CoreService, trainer: Caller, other_guild_trainer: Caller) -> None:
    rid = await core.delivery.record_exchange(trainer, "q", "a")
    with pytest.raises(NotFound):
        await core.delivery.bind_reply(other_guild_trainer, rid, "777")
    await core.delivery.bind_reply(trainer, rid, "777")
    await core.feedback.correct(trainer, "777", "better")
