"""Revisions of taught answers: every change is kept (who, when, why, from what), chat and
training read the current answer only, trainers revert and edit, forget takes a person's
words out of every revision, and another server's chain stays out of reach."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from sqlalchemy import select

from tests.conftest import JSONL_FACTS, att, row_counts
from trainerbot.core import Caller, CoreService
from trainerbot.datasets.snapshots import read_snapshot
from trainerbot.errors import BadInput, NotAllowed, NotFound
from trainerbot.store import repo
from trainerbot.store.tables import AuditEntry, DatasetItem

QUESTION = "What is the capital of Zorbia?"


@pytest.fixture
def core(core_on_both_stores: CoreService) -> CoreService:
    """Every test here runs on SQLite and on PostgreSQL."""
    return core_on_both_stores


async def _taught(core: CoreService, caller: Caller, question: str = QUESTION) -> str | None:
    reply = await core.chat.reply(caller, question)
    return reply.content if reply.data.get("source") == "taught" else None


async def _corrected(core: CoreService, trainer: Caller, member: Caller, answer: str, mid: str = "m1") -> None:
    """``member`` corrects a reply of the bot to QUESTION with ``answer``; ``trainer`` approves it."""
    await core.delivery.record_exchange(member, QUESTION, "Paris.", prompt_message_id=f"p{mid}", reply_message_id=mid)
    reply = await core.feedback.correct(member, mid, answer)
    await core.review.approve(trainer, reply.data["correction_id"])


def _trained_answers(core: CoreService, trainer: Caller, dataset: str) -> list[str]:
    """The answers to QUESTION in a fresh training snapshot of ``dataset``."""
    try:
        snap, _ = core.datasets.snapshot(trainer, dataset, "selection", None)
    except BadInput:  # nothing current left in it
        return []
    _, examples = read_snapshot(core.data_dir / "guilds" / trainer.guild_id / "snapshots" / snap.file_name)
    return [e.response for e in examples if e.prompt.lower().startswith("what is the capital")]


async def test_an_approved_correction_is_a_revision_and_training_sees_only_the_current_answer(
    core: CoreService, trainer: Caller, member: Caller
) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    assert await _taught(core, member) == "Quillport."
    await _corrected(core, trainer, member, "Zorbia City.")
    assert await _taught(core, member, "what is the capital of zorbia") == "Zorbia City."

    listed = await core.revisions.show(member, "1")
    assert listed.data == {"revisions": [1, 2], "current": 2}
    assert "**1** · " in listed.content and "imported by <@u-trainer> from facts.jsonl line 1: Quillport." in listed.content
    assert "**2** ✅ **current**" in listed.content
    assert "correction #1 by <@u-member>, approved by <@u-trainer>: Zorbia City." in listed.content
    # The replaced answer stays in `facts`, out of its snapshots; the DPO pair carries the new one.
    assert _trained_answers(core, trainer, "facts") == []
    assert _trained_answers(core, trainer, "feedback") == ["Zorbia City."]
    assert "replaced by a later answer" in (await core.datasets.item(member, "1")).content
    assert (await core.datasets.stats(trainer, "facts")).data["total"] == 2  # the other fact and the 👎 example


async def test_revert_makes_an_older_answer_current_again_as_a_new_revision(
    core: CoreService, trainer: Caller, member: Caller
) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    await _corrected(core, trainer, member, "Zorbia City.")
    assert await _taught(core, member) == "Zorbia City."

    with pytest.raises(NotAllowed):
        await core.revisions.revert(member, "1", "1")
    before = row_counts(core)
    with pytest.raises(BadInput, match="current answer already"):
        await core.revisions.revert(trainer, "1", "2")
    with pytest.raises(NotFound, match="no revision 7"):
        await core.revisions.revert(trainer, "1", "7")
    with pytest.raises(BadInput, match="Usage"):
        await core.revisions.revert(trainer, "1", "two")
    assert row_counts(core) == before

    done = await core.revisions.revert(trainer, "#4", "1", "Zorbia City is the old name")  # any example of the question
    assert done.data["revision"] == 3 and done.data["reverted_to"] == 1 and done.data["item_id"] == 1
    assert "Revision 1 of What is the capital of Zorbia? is the taught answer again (as revision 3)" in done.content
    assert await _taught(core, member) == "Quillport."  # chat's index follows at once
    assert _trained_answers(core, trainer, "facts") == ["Quillport."]
    assert _trained_answers(core, trainer, "feedback") == []
    listed = await core.revisions.show(member, "4")
    assert listed.data == {"revisions": [1, 2, 3], "current": 3}
    assert 'revision 1 made current again by <@u-trainer> (“Zorbia City is the old name”): Quillport.' in listed.content
    with core.store.read() as s:
        entry = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert entry is not None and (entry.action, entry.target) == ("revert", "example #4")
    assert entry.detail == "revision 1 is current again as revision 3: Zorbia City is the old name"

    # The conversation where the correction was made reads the answer taught now, too.
    with core.store.read() as s:
        conv = repo.conversation_id(s, 1, member.channel_id)
        assert conv is not None
        said = [t["content"] for t in repo.history(s, conv, 20)]
    assert said[:2] == [QUESTION, "Quillport."]  # the corrected reply (chat answered from facts after it)

    # And back again: the correction's example returns, no copy made.
    items = row_counts(core)["dataset_items"]
    assert (await core.revisions.revert(trainer, "1", "2")).data["item_id"] == 4
    assert row_counts(core)["dataset_items"] == items and await _taught(core, member) == "Zorbia City."


async def test_edit_delete_and_import_are_revisions_too(core: CoreService, trainer: Caller, member: Caller) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    with pytest.raises(NotAllowed):
        await core.revisions.edit(member, "1", "Vandalised.")
    with pytest.raises(BadInput, match="negative example"):
        await core.revisions.edit(trainer, "3", "No, it is not.")
    with pytest.raises(BadInput, match="taught answer already"):
        await core.revisions.edit(trainer, "1", "Quillport.")
    with pytest.raises(BadInput, match="Write the new answer"):
        await core.revisions.edit(trainer, "1", "  ")

    edited = await core.revisions.edit(trainer, "1", "Quillport, on the coast.")
    assert edited.data == {"item_id": 4, "revision": 2}
    assert await _taught(core, member) == "Quillport, on the coast."

    deleted = await core.datasets.delete_item(trainer, "4")
    assert "no taught answer now" in deleted.content
    assert await _taught(core, member) is None  # deleting the current answer leaves the question untaught
    listed = await core.revisions.show(member, "1")
    assert listed.data == {"revisions": [1, 2, 3], "current": None}
    assert "edited by <@u-trainer>: Quillport, on the coast." in listed.content
    assert "answer deleted by <@u-trainer> (example #4): *(no answer)*" in listed.content
    assert "No answer is taught for this question now." in listed.content
    with pytest.raises(BadInput, match="left the question without an answer"):
        await core.revisions.revert(trainer, "1", "3")
    # The edited answer's example is gone: reverting to it adds a copy, to the dataset it was in.
    items = row_counts(core)["dataset_items"]
    await core.revisions.revert(trainer, "1", "2")
    assert row_counts(core)["dataset_items"] == items + 1 and await _taught(core, member) == "Quillport, on the coast."
    assert _trained_answers(core, trainer, "facts") == ["Quillport, on the coast."]

    # A file that answers the question differently replaces the answer, and says so.
    imported = await core.datasets.import_data(trainer, "more", None,
                                                att("more.jsonl", '{"prompt": "what is the capital of Zorbia", '
                                                                  '"response": "Port Quill."}\n'))
    assert imported.data["replaced"] == 1 and "1 answer taught before replaced" in imported.content
    assert await _taught(core, member) == "Port Quill."
    assert _trained_answers(core, trainer, "facts") == []
    assert (await core.revisions.show(member, "1")).data == {"revisions": [1, 2, 3, 4, 5], "current": 5}


async def test_forget_takes_a_person_s_words_out_of_every_revision(
    core: CoreService, trainer: Caller, member: Caller
) -> None:
    other = replace(member, user_id="u-kim", user_name="Kim")
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    await _corrected(core, trainer, member, "Milo's answer.", "m1")
    await _corrected(core, trainer, other, "Kim's answer.", "m2")
    await core.revisions.revert(trainer, "1", "2", "the first fix was right")

    mine = json.loads((await core.review.mydata(member)).files[0].path.read_text())
    assert [(r["revision"], r["answer"], r["your_words"]) for r in mine["revisions"]] == [
        (4, "Milo's answer.", True), (2, "Milo's answer.", True)]
    kims = json.loads((await core.review.mydata(other)).files[0].path.read_text())
    assert "Milo" not in json.dumps(kims["revisions"])
    trainers = json.loads((await core.review.mydata(trainer)).files[0].path.read_text())
    assert {r["answer"] for r in trainers["revisions"] if not r["your_words"]} == {None}  # what they did, not others' words

    gone = await core.review.forget(member, "me")
    assert gone.data["revisions"] == 2 and "2 revisions of taught answers (the words taken out)" in gone.content
    listed = await core.revisions.show(trainer, "1")
    assert "Milo" not in listed.content and listed.content.count("*(forgotten)*") == 2
    assert "Kim's answer." in listed.content and "Quillport." in listed.content
    assert listed.data["current"] is None  # their answer was the current one; its example went with them
    with pytest.raises(BadInput, match="forgotten"):
        await core.revisions.revert(trainer, "1", "2")
    assert (await core.revisions.revert(trainer, "1", "3")).data["revision"] == 5
    assert await _taught(core, member) == "Kim's answer."
    # The trainer's reason stays: it is the trainer's words, not Milo's.
    assert "the first fix was right" in (await core.revisions.show(trainer, "1")).content
    assert (await core.review.forget(trainer, "<@u-trainer>")).data["revisions"] >= 2
    assert "the first fix was right" not in (await core.revisions.show(member, "5")).content


async def test_another_server_s_revisions_are_out_of_reach(
    core: CoreService, trainer: Caller, other_guild_trainer: Caller
) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    before = row_counts(core)
    for call in (core.revisions.show(other_guild_trainer, "1"), core.revisions.revert(other_guild_trainer, "1", "1"),
                 core.revisions.edit(other_guild_trainer, "1", "Elsewhere.")):
        with pytest.raises(NotFound, match="no example #1 here"):
            await call
    assert row_counts(core) == before
    with pytest.raises(NotFound, match="no revisions"):
        await core.revisions.show(trainer, "3")  # a 👎 example teaches no answer
    with core.store.read() as s:
        assert all(i.question_key for i in s.scalars(select(DatasetItem)))
