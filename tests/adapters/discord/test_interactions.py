"""Slash commands, the message menu, autocomplete, buttons and modals at discord.py's own
boundary: gateway-shaped INTERACTION_CREATE payloads into the real client, and the HTTP
calls it makes to a local stand-in for Discord's API (``interactions.py``)."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import discord
import pytest
import pytest_asyncio
from discord import app_commands
from sqlalchemy import select

from tests.adapters.discord.interactions import EPHEMERAL, FakeDiscord, Gateway
from tests.conftest import JSONL_FACTS, att
from trainerbot.adapters.console.repl import QUIT, Console, console_caller
from trainerbot.adapters.discord import ui
from trainerbot.adapters.discord.bot import TrainerBot, bot_settings
from trainerbot.core import Caller, CoreService
from trainerbot.core.commands import COMMANDS, words
from trainerbot.store.tables import Correction, Feedback

GUILD_A, GUILD_B = 100_000_000_000_000_001, 200_000_000_000_000_001
TESS, MILO = 500_000_000_000_000_001, 500_000_000_000_000_002
REPLY_MID = 900_000_000_000_000_001  # the Discord ID of one of the bot's replies


@pytest_asyncio.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord()
    url = await server.start()
    monkeypatch.setattr(discord.http.Route, "BASE", f"{url}/api/v10")
    yield server
    await server.stop()


def _gateway(fake: FakeDiscord) -> Gateway:
    gw = Gateway(fake, GUILD_A)
    gw.add_user("Tess", TESS, trainer=True)
    gw.add_user("Milo", MILO)
    return gw


async def _start(core: CoreService, gw: Gateway) -> TrainerBot:
    """A bot as after start-up: logged in (setup_hook ran), its guild in the cache."""
    bot = TrainerBot(core, bot_settings(core.settings))
    await bot.__aenter__()
    await bot.login("a-test-token")
    gw.join(bot)
    return bot


@pytest_asyncio.fixture
async def started(core: CoreService, fake: FakeDiscord) -> AsyncIterator[tuple[TrainerBot, Gateway]]:
    gw = _gateway(fake)
    bot = await _start(core, gw)
    yield bot, gw
    await bot.close()


def _caller(user: int, guild: int = GUILD_A, *, trainer: bool = False) -> Caller:
    return Caller(guild_id=str(guild), guild_name="Guild A", user_id=str(user), channel_id=str(guild + 10),
                  roles=frozenset({"trainer"}) if trainer else frozenset())


async def _bot_reply(core: CoreService, fake: FakeDiscord, gw: Gateway) -> dict[str, Any]:
    """One of the bot's replies, recorded by the core and present in the channel."""
    await core.datasets.import_data(_caller(TESS, trainer=True), "facts", None, att("facts.jsonl", JSONL_FACTS))
    reply = await core.chat.reply(_caller(MILO), "What is the capital of Zorbia?", message_id="42")
    await core.delivery.bind_reply(_caller(MILO), int(reply.data["reply_id"]), str(REPLY_MID))
    return fake.message(gw.channel_id, {"content": reply.content}, mid=REPLY_MID)


def _history(core: CoreService) -> list[str]:
    """What the model reads of the channel's history before Milo's next message there."""
    return [t["content"] for t in core.chat._chat_context(_caller(MILO))[2]]


def _only(calls: list[Any], kind: int) -> dict[str, Any]:
    answers = [c.body for c in calls if c.path.endswith("/callback")]
    assert len(answers) == 1 and answers[0]["type"] == kind, answers
    return answers[0].get("data") or {}


def _custom_ids(data: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in data.get("components", []) for c in row.get("components", [])]


def _modal_input(modal: dict[str, Any]) -> dict[str, Any]:
    row = modal["components"][0]
    return row["components"][0] if "components" in row else row["component"]


# ------------------------------------------------------------ the command tree
async def test_every_slash_parameter_explains_itself(started: tuple[TrainerBot, Gateway]) -> None:
    bot, _ = started
    walked = list(bot.tree.walk_commands())
    assert len(walked) > 25
    for command in walked:
        if isinstance(command, app_commands.ContextMenu):
            continue
        assert command.description and command.description != "…", command.qualified_name
        for param in getattr(command, "parameters", []):
            assert param.description and param.description != "…", f"{command.qualified_name}: {param.name}"
    slash = {c.qualified_name: c for c in walked if isinstance(c, app_commands.Command)}
    types = {name: {p.name: p.type for p in c.parameters} for name, c in slash.items()}
    for name, param in (("job", "job_id"), ("cancel", "job_id"), ("approve", "correction_id"), ("reject", "correction_id"),
                        ("handle_errors", "test_id")):
        assert types[name][param] is discord.AppCommandOptionType.integer, (name, param)
    assert types["forget"]["who"] is discord.AppCommandOptionType.user
    closed = {
        (name, p.display_name): [c.value for c in p.choices] for name, c in slash.items() for p in c.parameters if p.choices
    }
    assert closed[("export", "format")] == ["openai", "sft", "kto", "dpo", "csv"]
    assert closed[("train", "label")] == closed[("import", "label")] == ["positive", "negative"]
    assert closed[("language", "language")] == ["en", "ru"]
    completing = {(name, p.name) for name, c in slash.items() for p in c.parameters if p.autocomplete}
    assert {
        ("train", "dataset"),
        ("import", "dataset"),
        ("export", "dataset"),
        ("job", "job_id"),
        ("model use", "version"),
        ("model compare", "first"),
        ("handle_errors", "test_id"),
        ("approve", "correction_id"),
    } <= completing
    trainer_words = {c.word for c in COMMANDS if c.trainer and "discord" in c.where}
    for name, command in slash.items():
        if name.split()[0] in trainer_words or name == "model use":
            assert command.guild_only, name
    menus = bot.tree.get_commands(type=discord.AppCommandType.message)
    assert [(m.name, m.type) for m in menus] == [("Correct this reply", discord.AppCommandType.message)]


async def test_the_console_and_the_bot_offer_the_table_s_words(started: tuple[TrainerBot, Gateway], core: CoreService) -> None:
    bot, _ = started
    on_discord = {c.name for c in bot.commands if not c.hidden}
    assert on_discord == words("discord")
    assert {c.name for c in bot.tree.get_commands() if isinstance(c, app_commands.Command | app_commands.Group)} == words(
        "discord"
    )
    console = Console(core, console_caller("g", "u", "trainer", "trainer"), prefix="!",
                      max_attachment_bytes=core.settings.max_attachment_bytes)
    assert set(console.commands) | set(QUIT[:1]) == words("console")
    # What differs is declared in the table: reactions are Discord's rating; voice channels have no console.
    assert words("console") - words("discord") == {"react", "quit"}
    assert words("discord") - words("console") == {"join", "leave"}


# ------------------------------------------------------ correct from the menu
async def test_correct_this_reply_opens_a_prefilled_form_and_stores_the_correction(
    started: tuple[TrainerBot, Gateway], fake: FakeDiscord, core: CoreService
) -> None:
    bot, gw = started
    target = await _bot_reply(core, fake, gw)
    opened = _only(await gw.send(bot, gw.message_menu("Milo", "Correct this reply", target)), 9)
    field = _modal_input(opened)
    assert opened["title"] == "Correct this reply" and field["value"] == "Quillport."

    done = _only(await gw.send(bot, gw.modal_submit("Milo", opened, {field["custom_id"]: "Quillport, by the sea."})), 4)
    assert done["flags"] & EPHEMERAL and "correction #1 stored" in done["content"]
    with core.store.read() as s:
        rows = [(c.user_id, c.corrected, c.status, c.source) for c in s.scalars(select(Correction))]
    assert rows == [(str(MILO), "Quillport, by the sea.", "pending", f"message:{REPLY_MID}")]
    assert _history(core) == []  # the corrected reply no longer speaks as the bot's word, nor its question


async def test_correct_this_reply_on_someone_else_s_message_says_so(
    started: tuple[TrainerBot, Gateway], fake: FakeDiscord, core: CoreService
) -> None:
    bot, gw = started
    await _bot_reply(core, fake, gw)
    theirs = fake.message(gw.channel_id, {"content": "my own words"}, author=gw.users["Tess"]["user"])
    answer = _only(await gw.send(bot, gw.message_menu("Milo", "Correct this reply", theirs)), 4)
    assert answer["flags"] & EPHEMERAL and "not one of my replies" in answer["content"]
    # A message of the bot's that is not a chat reply (a command's answer) is refused the same way.
    status = fake.message(gw.channel_id, {"content": "Job #1 is queued."})
    assert (
        "not one of my replies" in _only(await gw.send(bot, gw.message_menu("Milo", "Correct this reply", status)), 4)["content"]
    )
    with core.store.read() as s:
        assert s.scalars(select(Correction)).all() == []


# ---------------------------------------------------------------- review buttons
async def _pending(core: CoreService, fake: FakeDiscord, gw: Gateway, *answers: str, one_question: bool = False) -> None:
    """Corrections by Milo, Milo2, …: each of another reply to another question, or with
    ``one_question`` all of the same reply (answers proposed for one question)."""
    await _bot_reply(core, fake, gw)
    for i, text in enumerate(answers):
        mid = REPLY_MID
        if i and not one_question:
            mid = REPLY_MID + i
            await core.delivery.record_exchange(_caller(MILO), f"Question number {i}?", "No idea.",
                                                prompt_message_id=f"p{i}", reply_message_id=str(mid))
        await core.feedback.correct(_caller(MILO + i), str(mid), text)


async def _review(bot: TrainerBot, gw: Gateway, user: str = "Tess") -> dict[str, Any]:
    """``/review`` as ``user``: the message it posted, as Discord would send it with a button press."""
    payload = gw.slash(user, "review")
    _only(await gw.send(bot, payload), 4)
    return copy.deepcopy(gw.fake.messages[gw.fake.originals[payload["token"]]])


def _status(core: CoreService, cid: int) -> tuple[str, str]:
    with core.store.read() as s:
        corr = s.get(Correction, cid)
        return corr.status, corr.corrected


async def test_review_buttons_work_after_a_restart(core: CoreService, fake: FakeDiscord) -> None:
    gw = _gateway(fake)
    gw.add_user("Milo2", MILO + 1)
    first = await _start(core, gw)
    await _pending(core, fake, gw, "Quillport, by the sea.", "Quillport!")
    review_message = await _review(first, gw)
    assert "Correction #1" in review_message["content"] and not review_message["flags"]
    assert _custom_ids(review_message) == [
        "trb:review:approve:1",
        "trb:review:reject:1",
        "trb:review:edit:1",
        "trb:review:next:1",
    ]
    second_look = await _review(first, gw)  # another trainer's review message, showing the same correction
    await first.close()

    bot = await _start(core, gw)  # a new process on the same store: nothing held in memory
    try:
        refused = _only(await gw.send(bot, gw.button("Milo", "trb:review:approve:1", review_message)), 4)
        assert refused["flags"] & EPHEMERAL and "Only trainers" in refused["content"]
        assert _status(core, 1)[0] == "pending"

        t0 = time.monotonic()
        updated = _only(await gw.send(bot, gw.button("Tess", "trb:review:approve:1", review_message)), 7)
        assert time.monotonic() - t0 < 3.0
        assert updated["content"].startswith(f"✅ Correction #1 approved by <@{TESS}>.")
        assert "Correction #2" in updated["content"] and "trb:review:approve:2" in _custom_ids(updated)
        assert _status(core, 1) == ("approved", "Quillport, by the sea.")
        assert fake.messages[int(review_message["id"])]["content"] == updated["content"]  # the message itself is edited
        assert _history(core) == ["What is the capital of Zorbia?", "Quillport, by the sea."]  # approved: in its place

        # Approve pressed on the other message, after the first decided it: reported, not applied twice.
        again = _only(await gw.send(bot, gw.button("Tess", "trb:review:approve:1", second_look)), 4)
        assert again["flags"] & EPHEMERAL and "already approved" in again["content"]
        with core.store.read() as s:
            assert len(s.scalars(select(Correction).where(Correction.status == "approved")).all()) == 1
    finally:
        await bot.close()


async def test_edit_changes_the_correction_before_approving_it(
    started: tuple[TrainerBot, Gateway], fake: FakeDiscord, core: CoreService
) -> None:
    bot, gw = started
    await _pending(core, fake, gw, "quillport")
    message = await _review(bot, gw)
    form = _only(await gw.send(bot, gw.button("Tess", "trb:review:edit:1", message)), 9)
    field = _modal_input(form)
    assert field["value"] == "quillport"
    member_form = _only(await gw.send(bot, gw.button("Milo", "trb:review:edit:1", message)), 4)
    assert member_form["flags"] & EPHEMERAL and "Only trainers" in member_form["content"]

    updated = _only(
        await gw.send(bot, gw.modal_submit("Tess", form, {field["custom_id"]: "Quillport, on the coast."}, message=message)), 7
    )
    assert updated["content"].startswith("✅ Correction #1 approved") and "Nothing waits for review" in updated["content"]
    assert _custom_ids(updated) == []
    assert _status(core, 1) == ("approved", "Quillport, on the coast.")
    reply = await core.chat.reply(_caller(MILO), "What is the capital of Zorbia?")
    assert reply.content == "Quillport, on the coast."


async def test_next_and_reject_move_through_the_queue(
    started: tuple[TrainerBot, Gateway], fake: FakeDiscord, core: CoreService
) -> None:
    bot, gw = started
    gw.add_user("Milo2", MILO + 1)
    await _pending(core, fake, gw, "first answer", "second answer")
    message = await _review(bot, gw)
    skipped = _only(await gw.send(bot, gw.button("Tess", "trb:review:next:1", message)), 7)
    assert "Correction #2" in skipped["content"] and _status(core, 1)[0] == "pending"
    message = copy.deepcopy(fake.messages[int(message["id"])])  # now showing #2
    rejected = _only(await gw.send(bot, gw.button("Tess", "trb:review:reject:2", message)), 7)
    assert rejected["content"].startswith("❌ Correction #2 rejected") and "Correction #1" in rejected["content"]
    assert _status(core, 2)[0] == "rejected"


async def test_answers_proposed_for_one_question_are_picked_from_a_menu_then_approved(
    core: CoreService, fake: FakeDiscord
) -> None:
    gw = _gateway(fake)
    gw.add_user("Milo2", MILO + 1)
    gw.add_user("Milo3", MILO + 2)
    first = await _start(core, gw)
    await _pending(core, fake, gw, "Quillport, by the sea.", "Vessaton.", "Amberly.", one_question=True)
    message = await _review(first, gw)
    assert "3 answers proposed for one question" in message["content"]
    assert _custom_ids(message) == ["trb:review:pick:1", "trb:review:approve:1", "trb:review:reject:1",
                                    "trb:review:edit:1", "trb:review:next:1"]
    menu = message["components"][0]["components"][0]
    assert [o["value"] for o in menu["options"]] == ["1", "2", "3"] and [o.get("default") for o in menu["options"]] == [
        True, False, False]
    assert menu["options"][1]["label"] == "#2: Vessaton."
    await first.close()

    bot = await _start(core, gw)  # the menu works after a restart: its options are its state
    try:
        refused = _only(await gw.send(bot, gw.select("Milo", "trb:review:pick:1", ["2"], message)), 4)
        assert refused["flags"] & EPHEMERAL and "Only trainers" in refused["content"]
        picked = _only(await gw.send(bot, gw.select("Tess", "trb:review:pick:1", ["2"], message)), 7)
        assert "▶ **#2**" in picked["content"] and "trb:review:approve:2" in _custom_ids(picked)
        assert [o.get("default") for o in picked["components"][0]["components"][0]["options"]] == [False, True, False]
        message = copy.deepcopy(fake.messages[int(message["id"])])
        decided = _only(await gw.send(bot, gw.button("Tess", "trb:review:approve:2", message)), 7)
        assert decided["content"].startswith(f"✅ Correction #2 approved by <@{TESS}>. #1, #3 closed as superseded.")
        assert "Nothing waits for review" in decided["content"] and _custom_ids(decided) == []
        assert [_status(core, n)[0] for n in (1, 2, 3)] == ["superseded", "approved", "superseded"]
        reply = await core.chat.reply(_caller(MILO), "What is the capital of Zorbia?")
        assert reply.content == "Vessaton."
    finally:
        await bot.close()


async def test_a_thumbs_down_asks_by_dm_what_was_wrong_and_the_answer_counts_after_a_restart(
    core: CoreService, fake: FakeDiscord
) -> None:
    gw = _gateway(fake)
    first = await _start(core, gw)
    await _pending(core, fake, gw)  # one of the bot's replies; no correction
    gw.react(first, "Milo", REPLY_MID, "👎")
    asked = await fake.wait_for(lambda c: c.method == "POST" and c.path.startswith("/channels/")
                                and "components" in c.body and "trb:why:" in str(c.body["components"]))
    assert "What was wrong with it?" in asked.body["content"] and "Guild A" in asked.body["content"]
    menu = asked.body["components"][0]["components"][0]
    assert menu["custom_id"] == f"trb:why:{GUILD_A}:{REPLY_MID}"
    assert [o["value"] for o in menu["options"]] == ["wrong", "outdated", "unsafe", "off_topic", "too_long", "other"]
    dm = next(m for m in fake.messages.values() if "trb:why:" in str(m.get("components")))
    gw.react(first, "Milo", REPLY_MID, "👎")  # again within the minute: not asked twice
    await asyncio.sleep(0.3)
    assert sum("trb:why:" in str(c.body.get("components")) for c in fake.calls if c.method == "POST") == 1
    await first.close()

    gw.add_user("Milo2", MILO + 1)
    bot = await _start(core, gw)  # the menu works after a restart: its custom_id is its state
    try:
        other = _only(await gw.send(bot, gw.dm_select("Milo2", menu["custom_id"], ["wrong"], dm)), 4)
        assert other["flags"] & EPHEMERAL and "Rate that reply 👎 first" in other["content"]  # not Milo2's rating
        chosen = _only(await gw.send(bot, gw.dm_select("Milo", menu["custom_id"], ["unsafe"], dm)), 7)
        assert chosen["content"] == "Thanks — noted: rude or unsafe. Trainers see it when they review."
        assert chosen["components"] == []
        with core.store.read() as s:
            assert [(f.user_id, f.label, f.reason) for f in s.scalars(select(Feedback))] == [(str(MILO), "negative", "unsafe")]
        await core.delivery.record_exchange(_caller(MILO), "Question number 2?", "No idea.", reply_message_id="77")
        await core.feedback.correct(_caller(MILO), "77", "Some other correction.")  # a pending correction waits too…
        shown = await core.review.next(_caller(TESS, trainer=True))
        assert shown.data["kind"] == "flagged" and "**What was wrong:** 1 rude or unsafe" in shown.content  # …behind it
    finally:
        await bot.close()


async def test_mydata_comes_to_its_owner_alone(started: tuple[TrainerBot, Gateway], fake: FakeDiscord, core: CoreService) -> None:
    bot, gw = started
    await _pending(core, fake, gw, "Quillport, by the sea.")
    calls = await gw.send(bot, gw.slash("Milo", "mydata"))
    [callback] = [c for c in calls if c.path.endswith("/callback")]
    assert callback.body["type"] == 4 and callback.body["data"]["flags"] & EPHEMERAL
    assert "1 correction" in callback.body["data"]["content"] and callback.files == ["mydata.json"]
    gw.add_user("Nina", MILO + 5)
    nothing = _only(await gw.send(bot, gw.slash("Nina", "mydata")), 4)  # nobody else's rows: nothing
    assert nothing["flags"] & EPHEMERAL and "I hold nothing about you here" in nothing["content"]


# ---------------------------------------------------------------- autocomplete
async def test_autocomplete_offers_this_server_s_datasets_only(started: tuple[TrainerBot, Gateway], core: CoreService) -> None:
    bot, gw = started
    await core.datasets.import_data(_caller(TESS, trainer=True), "facts", None, att("f.jsonl", JSONL_FACTS))
    await core.datasets.import_data(_caller(TESS, trainer=True), "faq", None, att("f.jsonl", JSONL_FACTS))
    await core.datasets.import_data(_caller(TESS, GUILD_B, trainer=True), "far-away-secret", None, att("f.jsonl", JSONL_FACTS))
    typed = [{"name": "dataset", "type": 3, "value": "fa", "focused": True}]
    choices = _only(await gw.send(bot, gw.autocomplete("Tess", "import", typed)), 8)["choices"]
    assert sorted(c["value"] for c in choices) == ["facts", "faq"]
    assert all(len(c["name"]) <= 100 for c in choices) and any("3 examples" in c["name"] for c in choices)
    # Pending corrections are offered to trainers only.
    none = _only(
        await gw.send(
            bot, gw.autocomplete("Milo", "approve", [{"name": "correction_id", "type": 4, "value": "", "focused": True}])
        ),
        8,
    )
    assert none["choices"] == []


# ------------------------------------------------------- answers and deadlines
async def test_errors_on_slash_commands_are_ephemeral(started: tuple[TrainerBot, Gateway]) -> None:
    bot, gw = started
    missing = _only(await gw.send(bot, gw.slash("Tess", "job", [{"name": "job_id", "type": 4, "value": 99}])), 4)
    assert missing["flags"] & EPHEMERAL and "no job #99" in missing["content"]
    refused = _only(await gw.send(bot, gw.slash("Milo", "archive", [{"name": "dataset", "type": 3, "value": "facts"}])), 4)
    assert refused["flags"] & EPHEMERAL and "Only trainers" in refused["content"]
    helped = _only(await gw.send(bot, gw.slash("Milo", "help")), 4)
    assert helped["flags"] & EPHEMERAL
    groups = [f["name"] for f in helped["embeds"][0]["fields"]]
    assert groups == ["💬 Chat", "🧑‍🏫 Teaching", "🗂️ Data", "🏋️ Training and testing", "🔊 Voice"]


async def test_a_slow_command_defers_before_the_deadline(
    started: tuple[TrainerBot, Gateway], fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot, gw = started
    # espeak-ng speaks this in ~50 ms here: a deadline of 0 makes any work "slow".
    monkeypatch.setattr(ui, "DEFER_AFTER_S", 0.0)
    t0 = time.monotonic()
    calls = await gw.send(
        bot, gw.slash("Milo", "say", [{"name": "text", "type": 3, "value": "Hello there, trainers."}]), expect=2
    )
    callback = next(c for c in calls if c.path.endswith("/callback"))
    assert callback.body["type"] == 5 and callback.at - t0 < 3.0
    followup = next(c for c in calls if c.method == "POST" and not c.path.endswith("/callback"))
    assert followup.files and followup.files[0].endswith(".wav")

    # An error found after deferring: the public "thinking…" goes, the error comes ephemeral.
    payload = gw.slash("Tess", "export", [{"name": "dataset", "type": 3, "value": "nosuch"}])
    calls = await gw.send(bot, payload, expect=3)
    assert [c.method for c in calls] == ["POST", "DELETE", "POST"]
    assert calls[2].body["flags"] & EPHEMERAL and "nosuch" in calls[2].body["content"]


async def test_a_fast_command_answers_at_once(started: tuple[TrainerBot, Gateway]) -> None:
    bot, gw = started
    shown = _only(await gw.send(bot, gw.slash("Milo", "jobs")), 4)
    assert not shown.get("flags") and "No training jobs" in shown["content"]


async def test_nothing_the_bot_answers_can_ping(
    started: tuple[TrainerBot, Gateway], fake: FakeDiscord, core: CoreService
) -> None:
    bot, gw = started
    await _pending(core, fake, gw, "@everyone Quillport")
    message = await _review(bot, gw)
    await gw.send(bot, gw.button("Tess", "trb:review:approve:1", message))
    sent = [c for c in fake.calls if c.body.get("content") or (c.body.get("data") or {}).get("content")]
    assert sent
    for c in sent:
        body = c.body.get("data") or c.body
        assert body.get("allowed_mentions", {}).get("parse") == [], body


async def test_a_flagged_reply_is_corrected_from_the_review_message(
    started: tuple[TrainerBot, Gateway], fake: FakeDiscord, core: CoreService
) -> None:
    bot, gw = started
    await _bot_reply(core, fake, gw)
    await core.feedback.react(_caller(MILO), str(REPLY_MID), "👎")
    assert _history(core) == []  # flagged: out of the history until someone teaches the answer
    message = await _review(bot, gw)
    assert "Flagged reply" in message["content"] and _custom_ids(message) == [f"trb:flagged:correct:{REPLY_MID}"]
    refused = _only(await gw.send(bot, gw.button("Milo", f"trb:flagged:correct:{REPLY_MID}", message)), 4)
    assert refused["flags"] & EPHEMERAL and "Only trainers" in refused["content"]
    form = _only(await gw.send(bot, gw.button("Tess", f"trb:flagged:correct:{REPLY_MID}", message)), 9)
    field = _modal_input(form)
    done = _only(await gw.send(bot, gw.modal_submit("Tess", form, {field["custom_id"]: "Quillport, of course."})), 4)
    assert done["flags"] & EPHEMERAL and "approved" in done["content"]
    assert _status(core, 1) == ("approved", "Quillport, of course.")
    assert _history(core) == ["What is the capital of Zorbia?", "Quillport, of course."]


async def test_forget_takes_a_user_from_the_picker(started: tuple[TrainerBot, Gateway], core: CoreService) -> None:
    bot, gw = started
    await core.feedback.leave(_caller(MILO), "more facts please")
    tess = gw.users["Tess"]

    def forget(user: str, who: dict[str, Any] | None) -> dict[str, Any]:
        if who is None:
            return gw.slash(user, "forget")
        uid = who["user"]["id"]
        return gw.slash(
            user,
            "forget",
            [{"name": "who", "type": 6, "value": uid}],
            resolved={"users": {uid: who["user"]}, "members": {uid: {k: v for k, v in who.items() if k != "user"}}},
        )

    refused = _only(await gw.send(bot, forget("Milo", tess)), 4)
    assert refused["flags"] & EPHEMERAL and "Only trainers" in refused["content"]
    mine = _only(await gw.send(bot, forget("Milo", None)), 4)  # left out: the asker
    assert mine["flags"] & EPHEMERAL and "Forgot everything from you" in mine["content"]
    theirs = _only(await gw.send(bot, forget("Tess", gw.users["Milo"])), 4)
    assert f"I hold nothing from <@{MILO}>" in theirs["content"]


async def test_dashboard_gives_its_link_only_to_the_asker(started: tuple[TrainerBot, Gateway], core: CoreService) -> None:
    bot, gw = started
    off = _only(await gw.send(bot, gw.slash("Tess", "dashboard")), 4)
    assert off["flags"] & EPHEMERAL and "TRAINERBOT_DASHBOARD_PORT" in off["content"]
    core.dashboard.dashboard = replace(core.dashboard.dashboard, dashboard_port=8080)
    link = _only(await gw.send(bot, gw.slash("Tess", "dashboard")), 4)
    assert link["flags"] & EPHEMERAL and "http://127.0.0.1:8080/login/" in link["content"]
    out = _only(await gw.send(bot, gw.slash("Tess", "dashboard", [{"name": "action", "type": 3, "value": "logout"}])), 4)
    assert out["flags"] & EPHEMERAL and "unused link is void" in out["content"]


async def test_a_trainer_edits_and_reverts_a_taught_answer_with_slash_commands(
        started: tuple[TrainerBot, Gateway], core: CoreService) -> None:
    bot, gw = started
    await core.datasets.import_data(_caller(TESS, trainer=True), "facts", None, att("facts.jsonl", JSONL_FACTS))
    example = [{"name": "example", "type": 3, "value": "1"}]
    edited = _only(await gw.send(bot, gw.slash("Tess", "edit", [*example, {"name": "answer", "type": 3,
                                                                          "value": "Quillport, by the sea."}])), 4)
    assert "revision 2" in edited["content"]
    refused = _only(await gw.send(bot, gw.slash("Milo", "revert", [*example, {"name": "revision", "type": 3, "value": "1"}])), 4)
    assert refused["flags"] & EPHEMERAL and "Only trainers" in refused["content"]
    listed = _only(await gw.send(bot, gw.slash("Milo", "revisions", example)), 4)  # anyone may read the chain
    assert "**2** ✅ **current**" in listed["content"] and "edited by <@" in listed["content"]
    reverted = _only(await gw.send(bot, gw.slash("Tess", "revert", [*example, {"name": "revision", "type": 3, "value": "1"},
                                                                   {"name": "why", "type": 3, "value": "too long"}])), 4)
    assert "is the taught answer again (as revision 3)" in reverted["content"]
    assert (await core.chat.reply(_caller(MILO), "What is the capital of Zorbia?")).content == "Quillport."
