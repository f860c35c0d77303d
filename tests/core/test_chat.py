from __future__ import annotations

import dataclasses
import time

import pytest
from sqlalchemy import func, select

from tests.conftest import JSONL_FACTS, att
from trainerbot.core import Caller, CoreService
from trainerbot.errors import COMMAND, BadInput
from trainerbot.model.prompt import SYSTEM
from trainerbot.model.taught import TaughtIndex
from trainerbot.store.tables import FactEmbedding


async def test_before_any_model_the_bot_says_how_to_train(core: CoreService, member: Caller) -> None:
    reply = await core.chat.reply(member, "hello")
    assert "haven't been trained" in reply.content and f"{COMMAND}train sample" in reply.content
    assert reply.data["source"] == "none"


async def test_dataset_answers_are_taught_facts(core: CoreService, trainer: Caller, member: Caller) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("f.jsonl", JSONL_FACTS))
    reply = await core.chat.reply(member, "what is the capital of zorbia")
    assert reply.content == "Quillport." and reply.data["source"] == "taught"
    # Negative examples are never served as answers.
    assert (await core.chat.reply(member, "Is Zorbia an island?")).data["source"] == "none"


async def test_a_trainers_correction_answers_at_once(core: CoreService, trainer: Caller, member: Caller) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("f.jsonl", JSONL_FACTS))
    first = await core.chat.reply(member, "What is the capital of Zorbia?")
    await core.delivery.bind_reply(member, first.data["reply_id"], "m1")
    await core.feedback.correct(trainer, "m1", "Quillport, since 1203.")
    start = time.perf_counter()
    reply = await core.chat.reply(member, "What is the capital of Zorbia?")
    assert time.perf_counter() - start < 1.0
    assert reply.content == "Quillport, since 1203."


async def test_a_pending_correction_is_not_served(core: CoreService, trainer: Caller, member: Caller) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("f.jsonl", JSONL_FACTS))
    first = await core.chat.reply(member, "Who founded Quillport?")
    await core.delivery.bind_reply(member, first.data["reply_id"], "m2")
    await core.feedback.correct(member, "m2", "Nobody.")
    assert (await core.chat.reply(member, "Who founded Quillport?")).content == "Admiral Vessa, in 1203."


async def test_taught_facts_stay_in_their_guild(core: CoreService, trainer: Caller, other_guild_trainer: Caller) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("f.jsonl", JSONL_FACTS))
    assert (await core.chat.reply(other_guild_trainer, "What is the capital of Zorbia?")).data["source"] == "none"


@pytest.mark.settings(history_messages=4)
async def test_replies_are_stored_with_prompt_and_bounded_history(core: CoreService, trainer: Caller, member: Caller) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("f.jsonl", JSONL_FACTS))
    for _ in range(5):
        await core.chat.reply(member, "What is the capital of Zorbia?")
    _, _, history, _ = core.chat._chat_context(member)
    assert len(history) == 4 and history[-1] == {"role": "assistant", "content": "Quillport."}
    other_channel = dataclasses.replace(member, channel_id="c2")
    assert core.chat._chat_context(other_channel)[2] == []


@pytest.mark.parametrize("text", ["", "   ", "x" * 9000])
async def test_bad_messages(core: CoreService, member: Caller, text: str) -> None:
    with pytest.raises(BadInput):
        await core.chat.reply(member, text)


def test_what_a_pretrained_model_reads(core: CoreService) -> None:
    """The system turn carries the taught facts that match the message (only those close to
    the best match); with facts only the latest exchange of history comes along, and the best
    fact follows it as an exchange of its own."""
    towns = ["Silker", "Loves", "Gatri", "Nelben"]
    taught = TaughtIndex([*((f"Which river flows through {t}?", f"The {t}a river flows through {t}.") for t in towns),
                          *((f"What does {t} make?", f"{t} makes amber.") for t in ("Zorco", "Quill", "Vessa"))])
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}"} for i in range(6)]

    def asked(text: str) -> dict[str, str]:
        return {"role": "user", "content": text}

    read = core.chat._conversation(taught, history, asked("Name the river that runs through Gatri."), SYSTEM)
    assert [m["role"] for m in read] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert read[0]["content"].startswith(SYSTEM) and "The Gatria river flows through Gatri." in read[0]["content"]
    assert not any(t in read[0]["content"] for t in ("Silker", "Loves", "Nelben"))  # they share only "river": left out
    assert read[1:3] == history[-2:]
    assert read[3:5] == [{"role": "user", "content": "Which river flows through Gatri?"},
                         {"role": "assistant", "content": "The Gatria river flows through Gatri."}]
    assert read[-1] == {"role": "user", "content": "Name the river that runs through Gatri."}
    # No matching fact: the plain instruction and the whole history.
    plain = core.chat._conversation(taught, history, asked("hello there"), SYSTEM)
    assert plain == [{"role": "system", "content": SYSTEM}, *history, {"role": "user", "content": "hello there"}]
    # Facts that share a word common among the taught questions, but not what the message
    # is about, stay out too.
    bees = core.chat._conversation(taught, history, asked("What do bees make?"), SYSTEM)
    assert bees == [{"role": "system", "content": SYSTEM}, *history, {"role": "user", "content": "What do bees make?"}]
    # A model built from scratch (no persona) reads the history and the message only.
    assert core.chat._conversation(taught, history, asked("hi"), None) == [*history, asked("hi")]


async def test_taught_questions_are_embedded_once_and_stored(core: CoreService, trainer: Caller, member: Caller,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import func, select

    from trainerbot.store.tables import FactEmbedding

    embedder = core.runtimes.embedder()
    assert embedder is not None
    embedded: list[int] = []
    real = embedder.encode
    monkeypatch.setattr(embedder, "encode", lambda texts: embedded.append(len(texts)) or real(texts))
    await core.datasets.import_data(trainer, "facts", None, att("f.jsonl", JSONL_FACTS))
    gid = core.chat._chat_context(member)[0]
    index = core.chat._taught_index(gid)
    assert index is not None and index.meaning is not None and embedded == [len(index)]
    with core.store.read() as s:
        assert s.scalar(select(func.count()).select_from(FactEmbedding)) == len(index)
    core.chat._taught.clear()  # a restarted bot: the vectors come from the store
    again = core.chat._taught_index(gid)
    assert again is not None and again.meaning is not None and embedded == [len(index)]
    assert bool((again.meaning.vectors == index.meaning.vectors).all())


async def test_a_big_import_is_embedded_in_the_background(core: CoreService, trainer: Caller, member: Caller,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from trainerbot.core import chat

    monkeypatch.setattr(chat, "MEANING_NOW", 1)
    await core.datasets.import_data(trainer, "facts", None, att("f.jsonl", JSONL_FACTS))
    gid = core.chat._chat_context(member)[0]
    first = core.chat._taught_index(gid)
    assert first is not None and first.meaning is None  # words alone while the vectors are made
    deadline = time.monotonic() + 60
    while gid in core.chat._embedding and time.monotonic() < deadline:
        time.sleep(0.05)
    later = core.chat._taught_index(gid)
    assert later is not first and later is not None and later.meaning is not None


async def test_closing_stops_the_background_embedding_and_waits_for_it(core: CoreService, trainer: Caller, member: Caller,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A torch thread still embedding at interpreter exit aborts the process ("terminate called
    without an active exception"): closing lets the batch it is on finish and joins it."""
    from trainerbot.core import chat

    monkeypatch.setattr(chat, "MEANING_NOW", 1)  # one question a batch
    rows = "".join(f'{{"prompt": "What is landmark {i} of Zorbia?", "response": "Tower {i}."}}\n' for i in range(200))
    await core.datasets.import_data(trainer, "facts", None, att("f.jsonl", rows))
    gid = core.chat._chat_context(member)[0]
    core.chat._taught_index(gid)
    [thread] = core.chat._embedders
    assert thread.is_alive()
    core.chat.close()
    assert not thread.is_alive()
    with core.store.read() as s:
        stored = s.scalar(select(func.count()).select_from(FactEmbedding))
    assert stored is not None and stored < 200  # it stopped between batches, each stored as it was done
