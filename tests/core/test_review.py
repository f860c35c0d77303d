"""The review queue, provenance (`dataset item`) and consent (`forget`)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from tests.conftest import JSONL_FACTS, att, row_counts
from trainerbot.core import Caller, CoreService
from trainerbot.errors import BadInput, Busy, NotAllowed, NotFound
from trainerbot.store.tables import Correction, DatasetItem, Feedback, Message


@pytest.fixture
def core(core_on_both_stores: CoreService) -> CoreService:
    """Every test here runs on SQLite and on PostgreSQL."""
    return core_on_both_stores


async def _reply(
    core: CoreService, caller: Caller, mid: str, prompt: str = "What is the capital of Zorbia?", answer: str = "Paris."
) -> int:
    return await core.delivery.record_exchange(caller, prompt, answer, prompt_message_id=f"p{mid}", reply_message_id=mid)


def _corrections(core: CoreService) -> list[Correction]:
    with core.store.read() as s:
        return list(s.scalars(select(Correction).order_by(Correction.id)))


async def _taught(core: CoreService, caller: Caller, question: str) -> str | None:
    reply = await core.chat.reply(caller, question)
    return reply.content if reply.data.get("source") == "taught" else None


async def test_only_an_approved_correction_teaches(core: CoreService, trainer: Caller, member: Caller) -> None:
    await _reply(core, member, "m1")
    await _reply(core, member, "m2", "Who founded Quillport?", "Nobody.")
    first = (await core.feedback.correct(member, "m1", "Quillport.")).data["correction_id"]
    second = (await core.feedback.correct(member, "m2", "Admiral Vessa.")).data["correction_id"]
    assert await _taught(core, member, "What is the capital of Zorbia?") is None  # pending: not used
    shown = await core.review.next(trainer)
    assert shown.data == {"kind": "correction", "correction_id": first, "waiting": 2, "proposals": [first]}
    assert "Quillport." in shown.content and "Paris." in shown.content and f"approve {first}" in shown.content
    with pytest.raises(NotAllowed):
        await core.review.next(member)
    with pytest.raises(NotAllowed):
        await core.review.approve(member, first)
    assert "approved" in (await core.review.approve(trainer, first)).content
    assert "rejected" in (await core.review.reject(trainer, f"#{second}")).content
    assert "already approved" in (await core.review.approve(trainer, first)).content
    assert [c.status for c in _corrections(core)] == ["approved", "rejected"]
    assert await _taught(core, member, "What is the capital of Zorbia?") == "Quillport."
    assert await _taught(core, member, "Who founded Quillport?") is None
    with core.store.read() as s:
        items = s.scalars(select(DatasetItem)).all()
    assert [(i.response, i.rejected, i.source, i.author_id) for i in items] == [
        ("Quillport.", "Paris.", "correction", "u-member")
    ]
    exported = await core.datasets.export(trainer, "feedback", "dpo")
    assert b"Admiral Vessa" not in exported.files[0].path.read_bytes()  # only approved ones train
    with pytest.raises(NotFound):
        await core.review.approve(trainer, 999)
    with pytest.raises(BadInput):
        await core.review.approve(trainer, "twelve")


async def test_answers_proposed_for_one_question_are_one_review_item_and_one_approval_supersedes_the_rest(
        core: CoreService, trainer: Caller, member: Caller) -> None:
    other = replace(member, user_id="u-other", user_name="Otto")
    third = replace(member, user_id="u-third", user_name="Thea")
    await _reply(core, member, "m1")
    await _reply(core, other, "m2", "what is the capital of Zorbia", "Paris, of course.")  # the same question, elsewhere
    await _reply(core, member, "m3", "Who founded Quillport?", "Nobody.")
    a = (await core.feedback.correct(member, "m1", "Quillport.")).data["correction_id"]
    b = (await core.feedback.correct(other, "m1", "Zorbia's capital is Vessaton.")).data["correction_id"]
    c = (await core.feedback.correct(third, "m2", "Quillport is the capital.")).data["correction_id"]
    assert (await core.feedback.correct(third, "m1", "zorbia's capital is Vessaton")).data["correction_id"] == b  # support
    d = (await core.feedback.correct(member, "m3", "Admiral Vessa.")).data["correction_id"]

    shown = await core.review.next(trainer)
    assert shown.review is not None and shown.review.proposals == (a, b, c)
    assert shown.review.correction_id == b  # the most supporters picked first
    assert "3 answers proposed for one question" in shown.content and "4 corrections waiting" in shown.content
    assert all(text in shown.content for text in ("Quillport.", "Vessaton", "Quillport is the capital.", "Paris."))
    assert f"▶ **#{b}** by <@u-other> (first correction) · asked by 2" in shown.content
    assert "Admiral Vessa" not in shown.content and "Taught now" not in shown.content
    picked = await core.review.next(trainer, chosen=c)
    assert picked.review is not None and picked.review.correction_id == c and f"▶ **#{c}**" in picked.content
    after = await core.review.next(trainer, after=a)  # past the whole question, whichever proposal was shown
    assert after.review is not None and after.review.proposals == (d,) and f"Correction #{d}" in after.content

    decided = await core.review.approve(trainer, c)
    assert f"#{a}, #{b} (other answers to the same question) were closed as superseded by #{c}" in decided.content
    assert [(x.id, x.status, x.superseded_by) for x in _corrections(core)] == [
        (a, "superseded", c), (b, "superseded", c), (c, "approved", None), (d, "pending", None)]
    assert f"already superseded by #{c}" in (await core.review.approve(trainer, a)).content
    assert await _taught(core, member, "What is the capital of Zorbia?") == "Quillport is the capital."
    # The next answer proposed for that question shows what is taught now, and its author's record.
    e = (await core.feedback.correct(member, "m1", "Quillport, on the coast.")).data["correction_id"]
    again = await core.review.next(trainer, chosen=e)
    assert "**Taught now:** Quillport is the capital." in again.content and again.review is not None
    assert again.review.proposals == (e,)
    # A trainer's own correction decides its question: the member's pending answer is superseded.
    await core.feedback.correct(trainer, "m3", "Quillport was founded by Admiral Vessa in 1204.")
    with core.store.read() as s:
        closed = s.get(Correction, d)
        assert closed is not None and closed.status == "superseded" and closed.superseded_by is not None
    members = await core.review.next(trainer)
    assert members.review is not None and members.review.proposals == (e,)


async def test_the_review_shows_each_author_s_record(core: CoreService, trainer: Caller, member: Caller) -> None:
    other = replace(member, user_id="u-other", user_name="Otto")
    for n, answer in enumerate(("Quillport.", "Vessaton.", "Amberly.")):
        await _reply(core, member, f"r{n}", f"Question number {n}?", "No idea.")
        cid = (await core.feedback.correct(member, f"r{n}", answer)).data["correction_id"]
        await (core.review.approve if n < 2 else core.review.reject)(trainer, cid)
    await _reply(core, member, "q", "What is the capital of Zorbia?", "Paris.")
    await core.feedback.correct(member, "q", "Quillport.")
    await core.feedback.correct(other, "q", "Vessaton.")
    shown = await core.review.next(trainer)
    assert "<@u-member> (2 approved, 1 rejected)" in shown.content and "<@u-other> (first correction)" in shown.content


async def test_review_reactions_decide_the_correction_they_show(core: CoreService, trainer: Caller, member: Caller) -> None:
    await _reply(core, member, "m1")
    cid = (await core.feedback.correct(member, "m1", "Quillport.")).data["correction_id"]
    await core.delivery.bind_review(trainer, cid, "review-msg-1")
    assert await core.review.reaction(trainer, "some-other-message", "✅") is None
    assert await core.review.reaction(trainer, "review-msg-1", "👍") is None
    with pytest.raises(NotAllowed):
        await core.review.reaction(member, "review-msg-1", "✅")
    reply = await core.review.reaction(trainer, "review-msg-1", "❌")
    assert reply is not None and reply.data["status"] == "rejected"


async def test_flagged_replies_follow_the_pending_corrections(core: CoreService, trainer: Caller, member: Caller) -> None:
    await _reply(core, trainer, "m1")
    assert (await core.review.next(trainer)).data["kind"] is None
    await core.feedback.react(member, "m1", "👎")
    shown = await core.review.next(trainer)
    assert shown.data == {"kind": "flagged", "message_id": "m1"} and "correct m1" in shown.content
    await core.feedback.react(trainer, "m1", "👍")  # a trainer finds it fine: 👎 1 / 👍 1 is no longer flagged
    assert (await core.review.next(trainer)).data["kind"] is None
    await core.feedback.react(trainer, "m1", "👍", added=False)
    await core.feedback.correct(trainer, "m1", "Quillport.")  # corrected: no longer waiting
    assert (await core.review.next(trainer)).data["kind"] is None


async def test_duplicates_merge_and_pending_items_are_capped(core: CoreService, trainer: Caller, member: Caller) -> None:
    other = replace(member, user_id="u-other-member", user_name="Ola")
    await _reply(core, member, "m1")
    first = await core.feedback.correct(member, "m1", "Quillport.")
    assert "already gave" in (await core.feedback.correct(member, "m1", "quillport")).content
    merged = await core.feedback.correct(other, "m1", "Quillport")
    assert merged.data["correction_id"] == first.data["correction_id"] and "counted your support" in merged.content
    [corr] = _corrections(core)
    assert corr.supporters == 2 and "asked by 2" in (await core.review.next(trainer)).content
    # A trainer giving the same answer approves the waiting one instead of adding a second.
    assert (await core.feedback.correct(trainer, "m1", "Quillport.")).data == {"correction_id": corr.id, "status": "approved"}
    assert len(_corrections(core)) == 1

    core.feedback.teaching = replace(core.feedback.teaching, max_pending_per_user=2)
    for i in range(2):
        await _reply(core, member, f"x{i}")
        await core.feedback.correct(member, f"x{i}", f"answer {i}")
    await _reply(core, member, "x9")
    before = row_counts(core)
    with pytest.raises(Busy, match="2 corrections waiting"):
        await core.feedback.correct(member, "x9", "one too many")
    assert row_counts(core) == before
    await core.feedback.correct(trainer, "x9", "trainers are not capped")


async def test_dataset_item_shows_where_an_example_came_from(
    core: CoreService, trainer: Caller, member: Caller, other_guild_trainer: Caller
) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("zorbia.jsonl", JSONL_FACTS))
    await _reply(core, member, "m1")
    await core.feedback.react(member, "m1", "👍")
    with core.store.read() as s:
        imported, rated = s.scalars(select(DatasetItem).order_by(DatasetItem.id)).all()[::3]
    shown = await core.datasets.item(member, str(imported.id))
    assert "in `facts` (current)" in shown.content and "<@u-trainer>" in shown.content and "zorbia.jsonl line 1" in shown.content
    rated_shown = await core.datasets.item(member, rated.id)
    assert "<@u-member>" in rated_shown.content and "👍 rating" in rated_shown.content and "`feedback`" in rated_shown.content
    with pytest.raises(NotFound):
        await core.datasets.item(other_guild_trainer, imported.id)  # another guild's example is invisible
    with pytest.raises(BadInput):
        await core.datasets.item(member, "../1")


async def _contributions(core: CoreService, trainer: Caller, person: Caller, tag: str) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("f.jsonl", JSONL_FACTS))
    reply_id = await core.chat.reply(person, f"hello from {tag}")  # no model: nothing stored
    assert reply_id.data["source"] == "none"
    await _reply(core, person, f"{tag}-1", f"question of {tag}?", "Paris.")
    await core.feedback.react(person, f"{tag}-1", "👎")
    await core.feedback.correct(person, f"{tag}-1", f"answer of {tag}")
    await core.feedback.leave(person, f"feedback of {tag}")


def _of(core: CoreService, user_id: str) -> dict[str, int]:
    with core.store.read() as s:
        return {
            "items": len(s.scalars(select(DatasetItem.id).where(DatasetItem.author_id == user_id)).all()),
            "feedback": len(s.scalars(select(Feedback.id).where(Feedback.user_id == user_id)).all()),
            "corrections": len(s.scalars(select(Correction.id).where(Correction.user_id == user_id)).all()),
            "messages": len(s.scalars(select(Message.id).where(Message.author_id == user_id)).all()),
        }


def _embeddings(core: CoreService) -> int:
    from sqlalchemy import func, select

    from trainerbot.store.tables import FactEmbedding

    with core.store.read() as s:
        return s.scalar(select(func.count()).select_from(FactEmbedding)) or 0


async def test_forget_removes_everything_of_one_user_and_nothing_of_another(
    core: CoreService, trainer: Caller, member: Caller
) -> None:
    other = replace(member, user_id="u-keep", user_name="Kim")
    await _contributions(core, trainer, member, "milo")
    await _contributions(core, trainer, other, "kim")
    await core.review.approve(trainer, _corrections(core)[0].id)  # milo's correction becomes an example
    kept_before = _of(core, "u-keep")
    trainer_before = _of(core, "u-trainer")
    assert _of(core, "u-member") == {"items": 2, "feedback": 2, "corrections": 1, "messages": 1}

    with pytest.raises(NotAllowed):
        await core.review.forget(other, "<@u-member>")  # only trainers forget others
    core.chat._taught_index(core.chat._chat_context(member)[0])  # the taught questions' embeddings, stored
    assert _embeddings(core) > 0
    reply = await core.review.forget(member, "me")
    assert _embeddings(core) == 0  # made from questions, some of them milo's: dropped, made again from what remains
    assert reply.data == {"examples": 2, "ratings and feedback": 2, "corrections": 1, "chat messages": 1, "revisions": 1}
    assert _of(core, "u-member") == {"items": 0, "feedback": 0, "corrections": 0, "messages": 0}
    assert _of(core, "u-keep") == kept_before and _of(core, "u-trainer") == trainer_before
    snapshot = await core.datasets.export(trainer, "feedback", "kto")
    assert b"milo" not in snapshot.files[0].path.read_bytes() and b"kim" in snapshot.files[0].path.read_bytes()
    assert "nothing from you" in (await core.review.forget(member, "me")).content

    gone = await core.review.forget(trainer, "<@u-keep>")
    assert gone.data["corrections"] == 1 and _of(core, "u-keep") == {"items": 0, "feedback": 0, "corrections": 0, "messages": 0}
    assert _of(core, "u-trainer") == trainer_before
    with pytest.raises(BadInput):
        await core.review.forget(trainer, "../../etc")


async def test_mydata_holds_the_caller_s_rows_only_and_forget_deletes_it(core: CoreService, trainer: Caller,
                                                                         member: Caller) -> None:
    import json

    other = replace(member, user_id="u-other", user_name="Otto")
    elsewhere = replace(member, guild_id="222", guild_name="Guild B", channel_id="c9")
    assert (await core.review.mydata(member)).files == ()  # nothing yet: no file
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    for caller, mid, answer in ((member, "m1", "Quillport."), (other, "m2", "Vessaton."), (elsewhere, "m3", "Far away.")):
        await _reply(core, caller, mid)
        await core.feedback.react(caller, mid, "👎")
        await core.feedback.correct(caller, mid, answer)
        await core.feedback.leave(caller, f"Feedback from {caller.user_id} in {caller.guild_id}.")
    await core.feedback.react(member, "m2", "👍")  # the member rates the other's reply: the member's rating
    await core.review.approve(trainer, 2)  # Otto's answer for the same question supersedes the member's

    sent = await core.review.mydata(member)
    assert "1 chat message, 2 ratings, 1 feedback note, 1 correction, 2 examples." in sent.content
    [file] = sent.files
    assert file.path.is_relative_to(core.data_dir / "guilds") and "private" in file.path.parts
    data = json.loads(file.path.read_text())
    text = file.path.read_text()
    assert "u-other" not in text and "Vessaton" not in text.replace('"reply_said": "Paris."', "")  # no other member's rows
    assert "Far away" not in text and "in 222" not in text  # nor the member's rows of another server
    assert [(m["id"], m["said"]) for m in data["messages"]] == [("pm1", "What is the capital of Zorbia?")]
    assert sorted(r["rating"] for r in data["ratings"]) == ["negative", "positive"]
    [corr] = data["corrections"]
    assert corr["your_answer"] == "Quillport." and corr["outcome"] == "superseded" and corr["superseded_by"] == 2
    assert [f["text"] for f in data["feedback"]] == ["Feedback from u-member in 111."]
    assert sorted((e["from"], e["label"]) for e in data["examples"]) == [("reaction", "negative"), ("reaction", "positive")]
    assert data["dashboard_sessions"] == [] and data["left_out"] == {}
    listing = (await core.datasets.getfile(trainer, None)).content
    assert "mydata" not in listing and "private" not in listing  # not a file area anyone can fetch from
    # The member's file in the other server holds that server's rows only.
    far = json.loads((await core.review.mydata(elsewhere)).files[0].path.read_text())
    assert [c["your_answer"] for c in far["corrections"]] == ["Far away."] and "Quillport" not in json.dumps(far)

    forgotten = await core.review.forget(member, "me")
    assert "1 correction" in forgotten.content and not file.path.exists()
    assert (await core.review.mydata(member)).files == ()


async def test_mydata_is_bounded_and_rate_limited(core: CoreService, member: Caller, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from trainerbot.core import mydata

    for n in range(30):
        await core.feedback.leave(member, f"Feedback number {n}: " + "x" * 300)
    core.review.limits = replace(core.review.limits, max_send_bytes=4096)
    data = json.loads((await core.review.mydata(member)).files[0].path.read_text())
    assert len(json.dumps(data)) <= 4096 and 0 < len(data["feedback"]) < 30
    assert data["feedback"][0]["text"].startswith("Feedback number 29")  # the newest kept
    assert "the oldest" in data["left_out"]["feedback"]
    monkeypatch.setattr(mydata, "MAX_ROWS", 5)
    core.review.limits = replace(core.review.limits, max_send_bytes=1 << 20)
    data = json.loads((await core.review.mydata(member)).files[0].path.read_text())
    assert len(data["feedback"]) == 5 and "newest 5" in data["left_out"]["feedback"]
    monkeypatch.setattr(core.rate, "per_minute", 2)  # two asked already this minute
    with pytest.raises(Busy):
        await core.review.mydata(member)


async def test_every_decision_is_in_the_audit_log_and_forget_leaves_no_words(
        core: CoreService, trainer: Caller, member: Caller) -> None:
    other_trainer = replace(trainer, guild_id="222", guild_name="Guild B", user_id="u-far")
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    await _reply(core, member, "m1")
    await _reply(core, member, "m2", "Who founded Quillport?", "Nobody.")
    await _reply(core, member, "m3", "Is Zorbia an island?", "No.")
    first = (await core.feedback.correct(member, "m1", "Quillport.")).data["correction_id"]
    second = (await core.feedback.correct(replace(member, user_id="u-other"), "m1", "Vessaton.")).data["correction_id"]
    third = (await core.feedback.correct(member, "m2", "Admiral Vessa.")).data["correction_id"]
    fourth = (await core.feedback.correct(member, "m3", "Yes, a secret island.")).data["correction_id"]
    await core.review.approve(trainer, first)
    await core.review.reject(trainer, third)
    await core.review.approve(trainer, fourth, corrected="Yes, it is an island.")
    await core.review.approve(trainer, first)  # already decided: nothing new is recorded
    await core.datasets.delete_item(trainer, 1)
    await core.persona.persona(trainer, "You are Quill, the helper of sailors.")
    await core.persona.persona(trainer, "reset")
    job = (await core.training.train(trainer, "facts")).data["job_id"]
    await core.training.cancel(trainer, job)
    await core.datasets.archive(trainer, "facts")
    await core.review.forget(member, "me")

    with pytest.raises(NotAllowed):
        await core.audit.latest(member)
    assert (await core.audit.latest(other_trainer)).content == "No decisions are recorded here yet."
    shown = await core.audit.latest(trainer)
    rows = [(r.actor_id, r.action, r.target, r.detail) for r in reversed(await core.audit.entries(trainer))]
    assert rows == [
        ("u-trainer", "approve", f"correction #{first}", f"closed #{second} as superseded"),
        ("u-trainer", "reject", f"correction #{third}", None),
        ("u-trainer", "edit", f"correction #{fourth}", "approved the edited answer"),
        ("u-trainer", "delete", "example #1", "from `facts`"),
        ("u-trainer", "persona", "set", "37 characters"),
        ("u-trainer", "persona", "reset", None),
        ("u-trainer", "cancel", f"job #{job}", "cancelled before it started"),
        ("u-trainer", "archive", "`facts`", rows[7][3]),
        ("u-member", "forget", "their own data", rows[8][3]),
    ]
    assert rows[7][3].startswith("2 examples into archives/facts-")  # 3 imported, 1 deleted (corrections go to `feedback`)
    assert "3 corrections" in rows[8][3] and "Quillport" not in shown.content and "island" not in shown.content
    assert shown.content.startswith("🧾 **Audit log**, newest first") and "**forget** their own data" in shown.content
    with pytest.raises(BadInput):
        await core.audit.latest(trainer, "soon")
    assert (await core.audit.latest(trainer, 1)).content == "Nothing older is recorded here."


async def test_a_thumbs_down_says_what_was_wrong_and_rude_or_unsafe_comes_first(
        core: CoreService, trainer: Caller, member: Caller) -> None:
    other = replace(member, user_id="u-other")
    await _reply(core, member, "m1")
    await _reply(core, member, "m2", "Who founded Quillport?", "Nobody.")
    await _reply(core, member, "m3", "Is Zorbia an island?", "No.")
    rated = await core.feedback.react(member, "m1", "👎", reason="too long")
    assert rated is not None and rated.data["reason"] == "too_long" and "Noted: too long." in rated.content
    await core.feedback.react(other, "m1", "👎", reason="the tone was off")  # anything else: "other", in their words
    before = row_counts(core)
    with pytest.raises(BadInput, match="limited to 200 characters"):
        await core.feedback.react(member, "m2", "👎", reason="x" * 201)
    with pytest.raises(BadInput, match="goes with a 👎"):
        await core.feedback.react(member, "m2", "👍", reason="wrong")
    with pytest.raises(NotFound, match="Rate that reply 👎 first"):
        await core.feedback.reason(member, "m2", "wrong")
    assert row_counts(core) == before  # bad input changed nothing
    shown = await core.review.next(trainer)
    assert shown.data["kind"] == "flagged" and "**What was wrong:** 1 other, 1 too long (“the tone was off”)" in shown.content
    [row] = await core.dashboard.flagged(trainer)
    assert row.reasons == "1 other, 1 too long (“the tone was off”)"

    await core.feedback.correct(member, "m3", "Yes, it is.")  # a pending correction …
    await core.feedback.react(member, "m2", "👎", reason="rude")  # … and a newer reply called rude: it comes first
    first = await core.review.next(trainer)
    assert first.review is not None and first.review.message_id == "m2" and "1 rude or unsafe" in first.content
    assert [f.message_id for f in await core.dashboard.flagged(trainer)] == ["m2", "m1"]
    await core.feedback.react(member, "m1", "👍")  # turned round: the reason goes with the 👎
    with core.store.read() as s:
        ratings = {(f.message_id, f.user_id): (f.label, f.reason) for f in s.scalars(select(Feedback))}
    assert ratings[(2, "u-member")] == ("positive", None) and ratings[(2, "u-other")] == ("negative", "other")  # m1: message 2


async def test_contributors_lists_who_taught_what_and_a_member_may_leave_the_list(
        core: CoreService, trainer: Caller, member: Caller) -> None:
    other = replace(member, user_id="u-other")
    elsewhere = replace(trainer, guild_id="222", guild_name="Guild B")
    assert "Nobody has taught me anything here yet" in (await core.contributors.contributors(member)).content
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))  # 3 examples
    await _reply(core, member, "m1")
    await _reply(core, member, "m2", "Who founded Quillport?", "Nobody.")
    await core.review.approve(trainer, (await core.feedback.correct(member, "m1", "Quillport.")).data["correction_id"])
    await core.feedback.react(member, "m2", "👎")
    await core.feedback.react(other, "m2", "👎")
    await core.datasets.import_data(elsewhere, "facts", None, att("facts.jsonl", JSONL_FACTS))
    shown = await core.contributors.contributors(member)
    assert shown.content.splitlines() == ["🏅 **Who taught me here**",
                                          "1. <@u-trainer> — 3 examples imported",
                                          "2. <@u-member> — 1 correction approved, 1 rating",
                                          "3. <@u-other> — 1 rating"]
    assert "no longer listed" in (await core.contributors.contributors(member, "hide")).content
    hidden = await core.contributors.contributors(trainer)
    assert "u-member" not in hidden.content and "1 contributor asked not to be listed." in hidden.content

    listed, hidden_count = await core.contributors.rows(trainer)
    assert [r.user_id for r in listed] == ["u-trainer", "u-other"] and hidden_count == 1
    await core.contributors.contributors(member, "show")
    assert "<@u-member>" in (await core.contributors.contributors(trainer)).content
    assert (await core.contributors.contributors(elsewhere)).data["listed"] == ["u-trainer"]  # each server its own
    with pytest.raises(BadInput):
        await core.contributors.contributors(member, "everyone")


async def test_trusted_members_support_approves_a_proposal_when_the_server_allows_it(
        core: CoreService, trainer: Caller, member: Caller, monkeypatch: pytest.MonkeyPatch) -> None:
    people = [replace(member, user_id=f"u-{n}") for n in range(5)]
    for n in range(4):
        await _reply(core, member, f"m{n}", f"Question number {n}?", "No idea.")
    first = (await core.feedback.correct(people[0], "m0", "Quillport.")).data["correction_id"]
    for p in people[1:4]:  # off by default: support alone approves nothing
        await core.feedback.correct(p, "m0", "Quillport.")
    assert _corrections(core)[0].status == "pending" and _corrections(core)[0].supporters == 4

    core.feedback.teaching = replace(core.feedback.teaching, auto_approve_supporters=3)
    second = (await core.feedback.correct(people[0], "m1", "Vessaton.")).data["correction_id"]
    assert (await core.feedback.correct(people[1], "m1", "Vessaton.")).data["status"] == "pending"
    approved = await core.feedback.correct(people[2], "m1", "vessaton")
    assert approved.data["status"] == "approved" and "enough members asked for it" in approved.content
    assert await _taught(core, member, "Question number 1?") == "Vessaton."
    entry = (await core.audit.entries(trainer))[0]
    assert (entry.actor_id, entry.action, entry.target, entry.detail) == (
        "auto-approval", "approve", f"correction #{second}", "3 members supported it")
    assert "already approved by its supporters" in (await core.review.approve(trainer, second)).content

    # A link, a mention or an invite always waits for a trainer, and review says so.
    spam = (await core.feedback.correct(people[0], "m2", "Join us at discord.gg/abcdef!")).data["correction_id"]
    for p in people[1:4]:
        await core.feedback.correct(p, "m2", "Join us at discord.gg/abcdef!")
    shown = await core.review.next(trainer, chosen=spam)
    assert "only a trainer can approve it" in shown.content
    # A supporter with more corrections rejected than approved: no approval by support.
    await core.review.reject(trainer, first)
    doubtful = (await core.feedback.correct(people[0], "m3", "@everyone look")).data["correction_id"]
    late = (await core.feedback.correct(people[3], "m3", "Amberly.")).data["correction_id"]
    await core.feedback.correct(people[0], "m3", "Amberly.")  # u-0: 1 approved, 1 rejected — still trusted
    await core.review.reject(trainer, doubtful)  # u-0: now 1 approved, 2 rejected
    assert (await core.feedback.correct(people[4], "m3", "Amberly.")).data["status"] == "pending"
    with core.store.read() as s:
        statuses = {c.id: c.status for c in s.scalars(select(Correction))}
    assert statuses[spam] == "pending" and statuses[late] == "pending"


async def test_a_member_whose_last_corrections_were_all_rejected_is_slowed_down_and_told_why(
        core: CoreService, trainer: Caller, member: Caller) -> None:
    for n in range(7):
        await _reply(core, member, f"m{n}", f"Question number {n}?", "No idea.")
    for n in range(5):
        cid = (await core.feedback.correct(member, f"m{n}", f"Wrong answer {n}.")).data["correction_id"]
        await core.review.reject(trainer, cid)
    allowed = await core.feedback.correct(member, "m5", "A better answer.")
    assert allowed.data["status"] == "pending"
    before = row_counts(core)
    with pytest.raises(Busy, match="last 5 corrections here were all rejected, so for now you can send one correction "
                                   "every 10 minutes"):
        await core.feedback.correct(member, "m6", "Another answer.")
    assert row_counts(core) == before
    await core.review.approve(trainer, allowed.data["correction_id"])  # an approved one lifts it
    assert (await core.feedback.correct(member, "m6", "Another answer.")).data["status"] == "pending"
