"""The Discord adapter end to end: dpytest messages through the real bot, cogs and core."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import replace

import discord
import discord.ext.test as dpytest
import pytest
from discord.ext import commands
from sqlalchemy import select

from tests.conftest import JSONL_FACTS
from trainerbot.adapters.discord.bot import TrainerBot
from trainerbot.model import pretrained
from trainerbot.store.tables import Correction, Feedback, Job, Message
from trainerbot.training.worker import serve

TESS, MILO, OTHER_GUILD_TESS = 0, 1, 2  # dpytest member indexes: Tess is a trainer in Guild A
CHANNEL_A, CHANNEL_B = 0, 2


async def _send(content: str, member: int | discord.Member = TESS, channel: int | discord.abc.Messageable = CHANNEL_A,
                attachments: list[str] | None = None) -> None:
    # dpytest re-raises every command error after the bot's own handler has answered it.
    with contextlib.suppress(commands.CommandError):
        await dpytest.message(content, channel=channel, member=member, attachments=attachments)


async def _ask(
    content: str, member: int = TESS, channel: int = CHANNEL_A, attachments: list[str] | None = None
) -> discord.Message:
    await _send(content, member, channel, attachments)
    return dpytest.get_message()


@pytest.fixture
def facts(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "facts.jsonl"
    path.write_text(JSONL_FACTS)
    return str(path)


async def test_hi_and_instruction(bot: TrainerBot) -> None:
    assert (await _ask("!hi")).content.startswith("Hi Tess")
    await dpytest.message("!instruction")
    first = dpytest.get_message()
    assert "how to teach me" in first.content and len(first.content) <= 2000
    await dpytest.empty_queue()
    helped = await _ask("!help", member=MILO)
    assert helped.embeds[0].title == "What I can do"
    assert [f.name for f in helped.embeds[0].fields][0] == "💬 Chat" and "`/train" in helped.embeds[0].fields[3].value
    assert "or with the prefix (`!hi`)" in helped.embeds[0].description  # the adapter's prefix, added by the cog


async def test_every_command_is_also_a_slash_command(bot: TrainerBot) -> None:
    slash = {c.name: c for c in bot.tree.get_commands()}
    prefix = {c.name for c in bot.commands if not c.hidden}
    assert prefix <= set(slash), prefix - set(slash)
    params = {p.name for p in slash["train"].parameters}
    assert params == {"dataset", "label", "attachment"}
    assert {p.name for p in slash["correct"].parameters} == {"message_id", "text"}
    assert {c.name for c in slash["model"].commands} == {"list", "use", "compare"}
    assert {p.name for p in slash["test"].parameters} == {"attachment", "cases"}
    label = next(p for p in slash["train"].parameters if p.name == "label")
    assert [c.value for c in label.choices] == ["positive", "negative"]


async def test_import_attachments_good_and_bad(bot: TrainerBot, facts: str, tmp_path) -> None:
    assert "Imported 3 examples into `facts`" in (await _ask("!import facts", attachments=[facts])).content
    assert "Attach a file" in (await _ask("!import facts")).content
    binary = tmp_path / "data.csv"
    binary.write_bytes(b"PK\x03\x04\x00\x00binary")
    assert "looks like a binary file" in (await _ask("!import facts", attachments=[str(binary)])).content
    listing = await _ask("!datasets", member=MILO)
    assert "`facts` — 3 examples" in listing.content
    stats = await _ask("!dataset facts", member=MILO)
    assert stats.embeds[0].title == "Dataset facts"
    assert {f.name: f.value for f in stats.embeds[0].fields}["Examples"] == "3"


async def test_trainer_commands_refuse_members(bot: TrainerBot, facts: str) -> None:
    await _ask("!import facts", attachments=[facts])
    for command in (
        "!archive facts",
        "!export facts",
        "!getfile",
        "!select_dataset facts",
        "!train facts",
        "!model use v1",
        "!cancel 1",
        "!import facts",
    ):
        reply = await _ask(command, member=MILO)
        assert "Only trainers" in reply.content, (command, reply.content)
    assert (await bot.core.datasets.stats(_caller(bot, TESS), "facts")).data["total"] == 3


def _caller(bot: TrainerBot, member: int):  # type: ignore[no-untyped-def]
    from trainerbot.adapters.discord.render import caller_of

    m = dpytest.get_config().members[member]
    return caller_of(m, m.guild, dpytest.get_config().channels[CHANNEL_A].id, owner_ids=set())


async def test_chat_reactions_and_correct(bot: TrainerBot, facts: str) -> None:
    await _ask("!import facts", attachments=[facts])
    me = bot.user
    reply = await _ask(f"<@{me.id}> what is the capital of zorbia?", member=MILO)
    assert reply.content == "Quillport."
    assert [str(r.emoji) for r in reply.reactions] == ["👍", "👎"]
    milo = dpytest.get_config().members[MILO]
    await dpytest.add_reaction(milo, reply, "👍")
    with bot.core.store.read() as s:
        assert [(f.kind, f.label) for f in s.scalars(select(Feedback))] == [("reaction", "positive")]
    await dpytest.remove_reaction(milo, reply, "👍")
    with bot.core.store.read() as s:
        assert s.scalars(select(Feedback)).all() == []
    corrected = await _ask(f"!correct {reply.id} Quillport, on the coast.")
    assert "approved" in corrected.content
    again = await _ask(f"<@{me.id}> what is the capital of zorbia?", member=MILO)
    assert again.content == "Quillport, on the coast."
    assert "don't know a reply" in (await _ask("!correct 12345 nope")).content


async def test_dms_are_chat_but_not_training(bot: TrainerBot) -> None:
    tess = dpytest.get_config().members[TESS]
    dm = await tess.create_dm()
    await _send("hello there", tess, dm)
    assert "haven't been trained" in dpytest.get_message().content
    await _send("!archive facts", tess, dm)
    assert "works in a server" in dpytest.get_message().content


async def test_cooldowns(bot: TrainerBot) -> None:
    for i in range(5):
        assert "noted" in (await _ask(f"!feedback note {i}", member=MILO)).content
    assert "going fast" in (await _ask("!feedback one more", member=MILO)).content


async def test_user_text_never_pings(bot: TrainerBot) -> None:
    reply = await _ask("!dataset @everyone", member=MILO)
    assert "is not a dataset name" in reply.content
    assert not reply.mention_everyone and reply.mentions == [] and reply.role_mentions == []


async def test_guilds_are_isolated(bot: TrainerBot, facts: str) -> None:
    await _ask("!import facts", attachments=[facts])
    assert "No datasets yet" in (await _ask("!datasets", member=OTHER_GUILD_TESS, channel=CHANNEL_B)).content


async def test_train_edits_its_message_with_progress_and_posts_the_curve(bot: TrainerBot, facts: str) -> None:
    queued = await _ask("!train facts", attachments=[facts])
    assert "Training job #1 queued" in queued.content
    with bot.core.store.read() as s:
        job = s.get(Job, 1)
        assert job.progress_message_id == str(queued.id)
    assert await bot.update_progress() == 1  # "queued" with an empty bar
    assert await bot.update_progress() == 0  # nothing changed: no edit
    bot._last_edit.clear()  # a restart forgets everything but the store
    await asyncio.to_thread(serve, bot.core.settings, once=True)
    assert await bot.update_progress() == 1
    channel = dpytest.get_config().channels[CHANNEL_A]
    edited = await channel.fetch_message(queued.id)
    assert "Training job #1 (SFT) — succeeded" in edited.content and "100%" in edited.content
    curve = dpytest.get_message()
    assert curve.attachments and curve.attachments[0].filename == "job-1-loss.png"
    assert await bot.update_progress() == 0  # announced once, not again
    shown = await _ask("!job 1", member=MILO)  # dpytest keeps the file of an embed-and-file message, not the embed
    assert shown.attachments[0].filename == "job-1-loss.png"


async def test_errors_are_friendly_and_never_show_the_token(bot: TrainerBot, caplog, monkeypatch) -> None:
    from pydantic import SecretStr

    token = "MTIzNDU2Nzg5MDEyMzQ1Njc4.dummy.token-for-the-leak-test"
    bot.settings = replace(bot.settings, discord=replace(bot.settings.discord, discord_token=SecretStr(token)))

    async def boom(*_: object) -> None:
        raise RuntimeError("internal detail")

    monkeypatch.setattr(bot.core.general, "hi", boom)
    with caplog.at_level(logging.DEBUG):
        replies = [await _ask("!hi"), await _ask("!dataset"), await _ask("!job abc"), await _ask("!cancel 99")]
        await _send("!nosuchcommand")
    texts = [r.content for r in replies]
    assert "Sorry, something went wrong" in texts[0] and "internal detail" not in texts[0]
    assert texts[1].startswith("Usage: `!dataset")
    assert "`job_id` takes a number" in texts[2] and "Usage: `!job <job_id>`" in texts[2] and "no job #99" in texts[3]
    assert "internal detail" in caplog.text  # the trace is logged…
    assert token not in caplog.text and all(token not in t for t in texts)  # …the token never


async def test_replying_to_the_bots_message_with_correct(bot: TrainerBot, facts: str) -> None:
    """`!correct <text>` sent as a Discord reply corrects the message it replies to."""
    from discord.ext.test import backend, runner
    from discord.ext.test import factories as facts_factory

    await _ask("!import facts", attachments=[facts])
    answer = await _ask(f"<@{bot.user.id}> who founded quillport?", member=MILO)
    cfg = dpytest.get_config()
    channel, tess = cfg.channels[CHANNEL_A], cfg.members[TESS]
    data = facts_factory.make_message_dict(
        channel, tess, content="!correct Admiral Vessa, the founder.", guild_id=channel.guild.id
    )
    data["message_reference"] = {"message_id": answer.id, "channel_id": channel.id, "guild_id": channel.guild.id}
    backend.get_state().parse_message_create(data)  # a reply, as the gateway sends it
    with contextlib.suppress(commands.CommandError):
        await runner.run_all_events()
    assert "approved" in dpytest.get_message().content
    again = await _ask(f"<@{bot.user.id}> who founded quillport?", member=MILO)
    assert again.content == "Admiral Vessa, the founder."


async def test_a_trainer_runs_the_dataset_and_model_commands(bot: TrainerBot, facts: str) -> None:
    await _ask("!import facts", attachments=[facts])
    exported = await _ask("!export facts sft")
    assert exported.attachments and exported.attachments[0].filename.startswith("facts-sft-")
    assert "Selected `facts` for the next training" in (await _ask("!select_dataset facts positive")).content
    archived = await _ask("!archive facts")
    assert "Archived 3 examples of `facts`" in archived.content
    listing = await _ask("!getfile")
    assert "archives/facts-" in listing.content
    name = archived.content.split("`archives/")[1].split("`")[0]
    assert (await _ask(f"!getfile {name}")).attachments[0].filename == name
    queued = await _ask("!train")  # the selected snapshot
    assert "Training job #1 queued" in queued.content
    assert "#1 SFT — queued" in (await _ask("!jobs")).content
    assert "Job #1 is cancelled" in (await _ask("!cancel 1")).content
    assert "No model versions yet" in (await _ask("!model")).content
    assert "no model version `v1`" in (await _ask("!model use v1")).content
    assert "I speak and listen in `en`" in (await _ask("!language")).content


async def test_review_queue_with_reactions(bot: TrainerBot, facts: str) -> None:
    await _ask("!import facts", attachments=[facts])
    me = bot.user
    answer = await _ask(f"<@{me.id}> what is the capital of zorbia?", member=MILO)
    assert "waiting for a trainer" in (await _ask(f"!correct {answer.id} Quillport, by the sea.", member=MILO)).content
    assert "Only trainers" in (await _ask("!review", member=MILO)).content
    shown = await _ask("!review")
    assert "Correction #1" in shown.content and shown.reactions == []  # buttons now; reactions stay a fallback
    await dpytest.add_reaction(dpytest.get_config().members[MILO], shown, "✅")  # a member's ✅ decides nothing…
    with bot.core.store.read() as s:
        assert s.get(Correction, 1).status == "pending"
    told = dpytest.get_message()  # …and is told so by DM, not dropped silently
    assert isinstance(told.channel, discord.DMChannel)
    assert "was not counted" in told.content and "Only trainers" in told.content
    await dpytest.add_reaction(dpytest.get_config().members[TESS], shown, "✅")
    assert "approved" in dpytest.get_message().content
    again = await _ask(f"<@{me.id}> what is the capital of zorbia?", member=MILO)
    assert again.content == "Quillport, by the sea."
    assert "Nothing waits" in (await _ask("!review")).content


async def test_test_command_takes_inline_json_or_a_file(bot: TrainerBot, tmp_path) -> None:
    assert "no active model" in (await _ask('!test [{"prompt": "2+2?", "expected": "4"}]', member=MILO)).content
    bad = tmp_path / "cases.jsonl"
    bad.write_text('{"prompt": "a"}\n{"prompt": \n')
    assert "cases.jsonl` line 2: invalid JSON" in (await _ask("!test", member=MILO, attachments=[str(bad)])).content
    assert "Give test cases as JSON" in (await _ask("!test")).content  # (Milo is at the cooldown now)


async def test_a_streaming_server_answer_is_edited_in_as_it_grows(bot: TrainerBot) -> None:
    from pydantic import SecretStr

    from tests.httpfake import serve
    from tests.openai_fake import KEY, OpenAIFake

    fake = OpenAIFake(answer="Quillport is the capital of Zorbia, by the sea.")  # 9 pieces, 0.35 s apart
    edits: list[str] = []
    original_edit = discord.Message.edit

    async def recording_edit(self, **kwargs):  # type: ignore[no-untyped-def]
        edits.append(kwargs.get("content", ""))
        return await original_edit(self, **kwargs)

    with serve(fake) as server, pytest.MonkeyPatch.context() as mp:
        mp.setattr(discord.Message, "edit", recording_edit)
        runtimes = bot.core.runtimes
        runtimes.model = replace(runtimes.model, backend="openai")
        runtimes.openai = replace(runtimes.openai, openai_base_url=server.url + "/v1", openai_api_key=SecretStr(KEY))
        first = await _ask(f"<@{bot.user.id}> where is Quillport?", member=MILO)
        await bot.core.close()
    assert dpytest.verify().message().nothing()  # no second message: the first one was finished in place
    reply = await first.channel.fetch_message(first.id)
    assert first.content.endswith(" …") and reply.content == fake.answer
    assert len(edits) >= 2 and edits[0].endswith(" …") and edits[-1] == fake.answer
    assert [str(r.emoji) for r in first.reactions] == ["👍", "👎"]  # the rating buttons, on the answer's message
    assert fake.chat_requests[0]["stream"] is True


async def test_dashboard_by_prefix_sends_the_link_by_dm_not_to_the_channel(bot: TrainerBot) -> None:
    bot.core.dashboard.dashboard = replace(bot.core.dashboard.dashboard, dashboard_port=8080)
    await _send("!dashboard")
    first, second = dpytest.get_message(), dpytest.get_message()
    dm, channel = (first, second) if isinstance(first.channel, discord.DMChannel) else (second, first)
    assert isinstance(dm.channel, discord.DMChannel) and "/login/" in dm.content
    assert "/login/" not in channel.content and "by DM" in channel.content


async def test_a_member_waiting_for_a_reply_slot_is_told_their_place_then_gets_the_answer(
        bot: TrainerBot, prepared, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The real llama.cpp runtime with one slot, held at the start of each reply: Tess's
    question takes the slot; Milo's waits, and his reply message says so ("you're next")
    until it is edited into his answer."""
    core = bot.core
    core.runtimes.model = replace(core.runtimes.model, model="smollm2")  # the tests run `scratch` unless told
    base = pretrained.base_dir(core.data_dir)
    base.parent.mkdir(parents=True, exist_ok=True)
    base.symlink_to(prepared, target_is_directory=True)
    real = await asyncio.to_thread(core.runtimes.for_chat, None)
    gate, started = threading.Event(), []

    class Gated:  # the real runtime, one slot, held at the start of each reply until the test opens the gate
        takes_system, source, takes_names, slots, label = real.takes_system, real.source, real.takes_names, 1, real.label

        def stream(self, conversation, *, max_new_tokens: int = 128):  # type: ignore[no-untyped-def]
            started.append(conversation[-1]["content"])
            gate.wait(30)
            yield from real.stream(conversation, max_new_tokens=min(max_new_tokens, 16))

    monkeypatch.setattr(core.runtimes, "for_chat", lambda version: Gated())
    me = bot.user
    assert me is not None
    first = asyncio.create_task(_send(f"<@{me.id}> Tell me something nice.", member=TESS))
    for _ in range(200):
        if started:
            break
        await asyncio.sleep(0.05)
    second = asyncio.create_task(_send(f"<@{me.id}> Say hello.", member=MILO))
    waiting = None
    for _ in range(200):
        channel = dpytest.get_config().guilds[0].text_channels[0]
        waiting = next(iter([m async for m in channel.history(limit=10) if m.author == me and m.content.startswith("-# ")]),
                       None)
        if waiting is not None:
            break
        await asyncio.sleep(0.05)
    try:
        assert waiting is not None and waiting.content == "-# I'm answering other people right now; you're next."
        assert started == ["Tell me something nice."] and core.chat.line.waiting == 1
    finally:
        gate.set()
        await asyncio.wait_for(asyncio.gather(first, second), 60)
    assert started == ["Tell me something nice.", "Say hello."]
    answer = await channel.fetch_message(waiting.id)  # the same message, now the answer
    assert answer.content and not answer.content.startswith("-# ")
    with core.store.read() as s:  # bound as the reply, so it can be rated and corrected
        bound = s.scalar(select(Message).where(Message.platform_message_id == str(waiting.id)))
        assert bound is not None and bound.role == "assistant" and bound.content == answer.content
