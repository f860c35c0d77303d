"""The history the model reads knows what was corrected: an approved correction stands in
place of the reply it corrects; a pending one, or a reply rated 👎 more than 👍, takes the
wrong reply (and the question it answered) out; the rows a training job is built from get
the same history; in a shared channel each member's turns carry their display name."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select

from trainerbot.core import Caller, CoreService
from trainerbot.core.text import speaker_name
from trainerbot.model.prompt import SYSTEM, conversation
from trainerbot.store.tables import DatasetItem

WRONG = "The bakery on Mill Street is owned by Emma."
RIGHT = "The bakery on Mill Street is run by Greta Okafor, who opened it in 2019."


@pytest.fixture
def core(core_on_both_stores: CoreService) -> CoreService:
    """Every test here runs on SQLite and on PostgreSQL."""
    return core_on_both_stores


async def _exchange(core: CoreService, caller: Caller, prompt: str, reply: str, mid: str) -> None:
    """One exchange recorded as chat records it: with the history the model read."""
    rid = await core.delivery.record_exchange(caller, prompt, reply, prompt_message_id=f"{mid}-q",
                                              context=_history(core, caller))
    await core.delivery.bind_reply(caller, rid, mid)


async def _talk(core: CoreService, member: Caller) -> None:
    await _exchange(core, member, "hi", "Hello! How can I help?", "m0")
    await _exchange(core, member, "Who runs the bakery on Mill Street?", WRONG, "m1")
    await _exchange(core, member, "What is 2 + 2?", "4", "m2")


def _history(core: CoreService, caller: Caller) -> list[dict[str, str]]:
    return core.chat._chat_context(caller)[2]


def _said(history: list[dict[str, str]]) -> list[str]:
    return [t["content"] for t in history]


async def test_an_approved_correction_stands_in_place_of_the_reply(core: CoreService, trainer: Caller,
                                                                    member: Caller) -> None:
    await _talk(core, member)
    assert WRONG in _said(_history(core, member))
    await core.feedback.correct(trainer, "m1", RIGHT)
    said = _said(_history(core, member))
    assert WRONG not in said
    assert said == ["hi", "Hello! How can I help?", "Who runs the bakery on Mill Street?", RIGHT, "What is 2 + 2?", "4"]


async def test_a_pending_correction_takes_the_wrong_reply_out_but_teaches_nothing(core: CoreService,
                                                                                   member: Caller) -> None:
    await _talk(core, member)
    reply = await core.feedback.correct(member, "m1", RIGHT)
    assert reply.data["status"] == "pending"
    said = _said(_history(core, member))
    assert said == ["hi", "Hello! How can I help?", "What is 2 + 2?", "4"]  # neither the wrong reply nor its question
    assert RIGHT not in said
    taught = core.chat._taught_index(core.chat._chat_context(member)[0])
    assert taught is None or taught.lookup("Who runs the bakery on Mill Street?") is None


async def test_a_reply_rated_down_more_than_up_leaves_the_history(core: CoreService, member: Caller,
                                                                   trainer: Caller) -> None:
    await _talk(core, member)
    await core.feedback.react(member, "m1", "👎")
    assert WRONG not in _said(_history(core, member))
    await core.feedback.react(trainer, "m1", "👍")  # one each: not flagged, it speaks again
    assert WRONG in _said(_history(core, member))
    await core.feedback.react(trainer, "m1", "👍", added=False)
    assert WRONG not in _said(_history(core, member))


async def test_a_rejected_correction_leaves_the_reply_as_it_was(core: CoreService, trainer: Caller,
                                                                 member: Caller) -> None:
    await _talk(core, member)
    await core.feedback.correct(member, "m1", "Nobody runs it.")
    await core.review.reject(trainer, 1)
    assert WRONG in _said(_history(core, member))


async def test_training_rows_carry_the_corrected_history(core: CoreService, trainer: Caller, member: Caller) -> None:
    await _talk(core, member)
    await core.feedback.correct(trainer, "m1", RIGHT)
    await core.feedback.correct(trainer, "m2", "2 + 2 is 4.")  # a later reply, whose history held the wrong one
    with core.store.read() as s:
        item = s.scalars(select(DatasetItem).where(DatasetItem.prompt == "What is 2 + 2?")).one()
    assert item.history == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Who runs the bakery on Mill Street?"},
        {"role": "assistant", "content": RIGHT},
    ]


async def test_a_shared_channel_shows_who_said_what(core: CoreService, member: Caller, trainer: Caller) -> None:
    tess = dataclasses.replace(trainer, user_name="Tess <@&1> @everyone")
    await _exchange(core, member, "Who runs the bakery?", "Greta does.", "n1")
    await _exchange(core, tess, "And since when?", "Since 2019.", "n2")
    history = _history(core, member)
    assert [t.get("name") for t in history] == ["Milo", None, "Tess &1 everyone", None]
    read = conversation(history, {"role": "user", "content": "Thanks!", "name": "Milo"}, persona=SYSTEM, facts=[],
                        max_chars=600)
    assert [t["content"] for t in read[1:]] == ["Milo: Who runs the bakery?", "Greta does.", "Tess &1 everyone: And since when?",
                                                "Since 2019.", "Milo: Thanks!"]
    assert all("name" not in t for t in read)
    field = conversation(history, {"role": "user", "content": "Thanks!", "name": "Milo"}, persona=SYSTEM, facts=[],
                         max_chars=600, names="field")
    assert [t.get("name") for t in field[1:]] == ["Milo", None, "Tess_1_everyone", None, "Milo"]
    # One member alone: the name tells the model nothing and is left out.
    alone = conversation(history[:2], {"role": "user", "content": "Thanks!", "name": "Milo"}, persona=SYSTEM, facts=[],
                         max_chars=600)
    assert [t["content"] for t in alone[1:]] == ["Who runs the bakery?", "Greta does.", "Thanks!"]


@pytest.mark.parametrize("raw, shown", [("Milo", "Milo"), ("<@123> hi", "123 hi"), ("a\nb`c*d", "a b c d"),
                                        ("@@@", None), ("x" * 80, "x" * 32)])
def test_speaker_names_are_mention_safe_and_bounded(raw: str, shown: str | None) -> None:
    assert speaker_name(raw) == shown


def test_the_corrected_exchange_is_not_said_twice() -> None:
    """Right after a correction the latest exchange is the best fact itself: it comes once."""
    q, a = "Who runs the bakery on Mill Street?", RIGHT
    history = [{"role": "user", "content": q, "name": "Milo"}, {"role": "assistant", "content": a}]
    read = conversation(history, {"role": "user", "content": "Tell me who owns that bakery on Mill Street"},
                        persona=SYSTEM, facts=[(q, a)], max_chars=600)
    assert [t["content"] for t in read[1:]] == [q, a, "Tell me who owns that bakery on Mill Street"]
