"""Teaching by everyone: ``feedback``, ``correct`` (by ID, or as a reply to the bot's
message), the message menu "Correct this reply" (Apps → Correct this reply), which opens
a form pre-filled with the reply's text, and 👍/👎 reactions on the bot's replies (a refused
rating is explained by DM)."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from trainerbot.adapters.discord.base import Ctx, TrainerBotBase
from trainerbot.adapters.discord.render import RATINGS, caller_of, ctx_caller, send_reply
from trainerbot.adapters.discord.ui import NOT_MY_REPLY, answer, ask_why, fail, open_correction, tell, tell_by_dm
from trainerbot.core.commands import describe
from trainerbot.errors import Busy, NotAllowed, TrainerBotError

CORRECT_MENU = "Correct this reply"


class FeedbackCog(commands.Cog, name="Feedback"):
    def __init__(self, bot: TrainerBotBase) -> None:
        self.bot = bot
        self.correct_menu = app_commands.ContextMenu(name=CORRECT_MENU, callback=self._correct_from_menu)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.correct_menu, override=True)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.correct_menu.name, type=self.correct_menu.type)

    @commands.hybrid_command(name="feedback", description=describe("feedback"))
    @app_commands.describe(text="What you want the trainers to know")
    @commands.cooldown(5, 60, commands.BucketType.user)
    async def feedback(self, ctx: Ctx, *, text: str) -> None:
        await send_reply(ctx, await self.bot.core.feedback.leave(ctx_caller(ctx), text))

    @commands.hybrid_command(name="correct", description=describe("correct"))
    @app_commands.describe(message_id="The ID of my reply (easier: right-click it → Apps → Correct this reply)",
                           text="The answer I should have given")
    async def correct(self, ctx: Ctx, message_id: str, *, text: str = "") -> None:
        ref = ctx.message.reference if ctx.interaction is None else None
        if ref is not None and ref.message_id is not None:
            # Replying to the bot's message: everything after the command is the answer.
            text = f"{message_id} {text}".strip()
            message_id = str(ref.message_id)
        await send_reply(ctx, await answer(ctx, lambda: self.bot.core.feedback.correct(ctx_caller(ctx), message_id, text)))

    async def _correct_from_menu(self, interaction: discord.Interaction[TrainerBotBase], message: discord.Message) -> None:
        try:
            if self.bot.user is None or message.author.id != self.bot.user.id:
                await tell(interaction, NOT_MY_REPLY)
                return
            await open_correction(interaction, str(message.id))
        except Exception as exc:
            await fail(interaction, exc)

    async def _reaction(self, payload: discord.RawReactionActionEvent, added: bool) -> None:
        if self.bot.user is None or payload.user_id == self.bot.user.id or str(payload.emoji) not in RATINGS:
            return
        guild = self.bot.get_guild(payload.guild_id) if payload.guild_id else None
        user = (guild.get_member(payload.user_id) if guild else None) or self.bot.get_user(payload.user_id)
        if user is None or user.bot:
            return
        caller = caller_of(user, guild, payload.channel_id, owner_ids=self.bot.owner_ids_known)
        try:
            rated = await self.bot.core.feedback.react(caller, str(payload.message_id), str(payload.emoji), added=added)
        except (Busy, NotAllowed) as exc:  # a refused rating is told (by DM: a reaction has no reply)
            await tell_by_dm(self.bot, user, f"Your {payload.emoji} was not counted: {exc.user_message}")
            return
        except TrainerBotError:
            return  # not one of my replies: other people's messages are none of my business
        if rated is not None and rated.rating == "negative" and guild is not None:
            await ask_why(self.bot, user, guild, payload.message_id)  # optional, by DM: a reaction has no reply

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        await self._reaction(payload, True)

    @commands.Cog.listener()
    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        await self._reaction(payload, False)
