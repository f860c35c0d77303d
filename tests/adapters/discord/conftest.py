"""A real ``TrainerBot`` over a real core, driven through dpytest's fake Discord backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import discord
import discord.ext.test as dpytest
import pytest_asyncio
from discord.ext.test import backend, callbacks

from trainerbot.adapters.discord.bot import TrainerBot, bot_settings
from trainerbot.core import CoreService
from trainerbot.errors import COMMAND


def _with_reaction_type(parse):  # type: ignore[no-untyped-def]
    # Discord's gateway sends "type" (normal or burst) with every reaction event; dpytest 0.7
    # predates that field and discord.py 2.7 requires it. Add it, as the real gateway does.
    def parse_with_type(data):  # type: ignore[no-untyped-def]
        data.setdefault("type", 0)
        data.setdefault("burst", False)
        return parse(data)
    return parse_with_type


@pytest_asyncio.fixture
async def bot(core: CoreService, tmp_path, monkeypatch) -> AsyncIterator[TrainerBot]:
    monkeypatch.chdir(tmp_path)  # dpytest writes the files the bot "uploads" into the working folder
    b = TrainerBot(core, bot_settings(core.settings))
    await b._async_setup_hook()
    await b.setup_hook()
    dpytest.configure(b, guilds=["Guild A", "Guild B"], text_channels=1, voice_channels=1, members=["Tess", "Milo"])
    state = backend.get_state()
    state.parse_message_reaction_add = _with_reaction_type(state.parse_message_reaction_add)
    state.parse_message_reaction_remove = _with_reaction_type(state.parse_message_reaction_remove)
    state.loop = asyncio.get_running_loop()  # dpytest's state has none; `channel.typing()` needs it
    config = dpytest.get_config()
    guild = config.guilds[0]
    role = backend.make_role("trainer", guild, permissions=0)
    await dpytest.add_role(guild.get_member(config.members[0].id), role)
    unrendered = _watch_for_command_marks()
    yield b
    b.progress_loop.cancel()
    await dpytest.empty_queue()
    # Every text the core wrote reached Discord with its commands as slash commands.
    assert not unrendered, f"sent with the core's command mark left in: {unrendered}"


def _watch_for_command_marks() -> list[str]:
    """Record each message the bot sends or edits that still holds the core's command mark."""
    found: list[str] = []
    sent = callbacks.get_callback("send_message")

    async def on_send(message: discord.Message) -> None:
        texts = [message.content or "", *(str(e.to_dict()) for e in message.embeds)]
        found.extend(t[:300] for t in texts if COMMAND in t)
        await sent(message)

    async def on_edit(channel: object, message: object, fields: dict[str, object]) -> None:
        if COMMAND in str(fields):
            found.append(str(fields)[:300])

    callbacks.set_callback(on_send, "send_message")
    callbacks.set_callback(on_edit, "edit_message")
    return found
