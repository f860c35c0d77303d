"""Teaching by everyone: ``feedback``, ``correct`` (by ID, or as a reply to the bot's
message), and the message menu "Correct this reply" (Apps → Correct this reply), which opens
a form pre-filled with the reply's text."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from trainerbot.adapters.discord.render import ctx_caller, send_reply
from trainerbot.adapters.discord.ui import NOT_MY_REPLY, answer, fail, open_correction, tell
from trainerbot.core.commands import describe

if TYPE_CHECKING:
    from trainerbot.adapters.discord.bot import TrainerBot

CORRECT_MENU = "Correct this reply"


class FeedbackCog(commands.Cog, name="Feedback"):
    def __init__(self, bot: TrainerBot) -> None:
        self.bot = bot
        self.correct_menu = app_commands.ContextMenu(name=CORRECT_MENU, callback=self._correct_from_menu)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.correct_menu, override=True)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.correct_menu.name, type=self.correct_menu.type)

    @commands.hybrid_command(name="feedback", description=describe("feedback"))
    @app_commands.describe(text="What you want the trainers to know")
    @commands.cooldown(5, 60, commands.BucketType.user)
    async def feedback(self, ctx: commands.Context[Any], *, text: str) -> None:
        await send_reply(ctx, await self.bot.core.feedback.leave(ctx_caller(ctx), text))

    @commands.hybrid_command(name="correct", description=describe("correct"))
    @app_commands.describe(message_id="The ID of my reply (easier: right-click it → Apps → Correct this reply)",
                           text="The answer I should have given")
    async def correct(self, ctx: commands.Context[Any], message_id: str, *, text: str = "") -> None:
        ref = ctx.message.reference if ctx.interaction is None else None
        if ref is not None and ref.message_id is not None:
            # Replying to the bot's message: everything after the command is the answer.
            text = f"{message_id} {text}".strip()
            message_id = str(ref.message_id)
        await send_reply(ctx, await answer(ctx, lambda: self.bot.core.feedback.correct(ctx_caller(ctx), message_id, text)))

    async def _correct_from_menu(self, interaction: discord.Interaction[Any], message: discord.Message) -> None:
        try:
            if self.bot.user is None or message.author.id != self.bot.user.id:
                await tell(interaction, NOT_MY_REPLY)
                return
            await open_correction(interaction, str(message.id))
        except Exception as exc:
            await fail(interaction, exc)
