"""Reviewing: ``review`` (with Approve / Reject / Edit / Next buttons), ``approve``,
``reject`` and ``forget``. Trainer-only ones are checked
here and again in the core. ✅/❌ reactions on a review message still decide, as a fallback;
a refused one is answered by DM."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from trainerbot.adapters.discord import complete
from trainerbot.adapters.discord.base import Ctx, TrainerBotBase
from trainerbot.adapters.discord.render import caller_of, ctx_caller, send_reply, shown, trainer_only
from trainerbot.adapters.discord.ui import interaction_caller, review_view, tell, tell_by_dm
from trainerbot.core.commands import describe
from trainerbot.core.review import APPROVE_EMOJI, REJECT_EMOJI
from trainerbot.core.types import Reply
from trainerbot.errors import Busy, NotAllowed, TrainerBotError

log = logging.getLogger(__name__)


class ReviewCog(commands.Cog, name="Review"):
    def __init__(self, bot: TrainerBotBase) -> None:
        self.bot = bot

    @commands.hybrid_command(name="review", description=describe("review"))
    @trainer_only()
    @commands.guild_only()
    async def review(self, ctx: Ctx) -> None:
        caller = ctx_caller(ctx)
        reply = await self.bot.core.review.next(caller)
        sent = await send_reply(ctx, reply, view=review_view(reply))
        if sent is not None and reply.review is not None and reply.review.correction_id is not None:
            await self.bot.core.delivery.bind_review(caller, reply.review.correction_id, str(sent.id))

    @commands.hybrid_command(name="approve", description=describe("approve"))
    @app_commands.describe(correction_id="The correction's number, as `review` shows it")
    @trainer_only()
    @commands.guild_only()
    async def approve(self, ctx: Ctx, correction_id: int) -> None:
        await send_reply(ctx, await self.bot.core.review.approve(ctx_caller(ctx), correction_id))

    approve.autocomplete("correction_id")(complete.corrections)

    @commands.hybrid_command(name="reject", description=describe("reject"))
    @app_commands.describe(correction_id="The correction's number, as `review` shows it")
    @trainer_only()
    @commands.guild_only()
    async def reject(self, ctx: Ctx, correction_id: int) -> None:
        await send_reply(ctx, await self.bot.core.review.reject(ctx_caller(ctx), correction_id))

    reject.autocomplete("correction_id")(complete.corrections)

    # `forget`: the prefix command takes `me`, a mention or an ID; the slash command a user picker.
    @commands.command(name="forget", description=describe("forget"))
    @commands.cooldown(2, 60, commands.BucketType.user)
    async def forget(self, ctx: Ctx, who: str) -> None:
        await send_reply(ctx, await self.bot.core.review.forget(ctx_caller(ctx), who))

    @app_commands.command(name="forget", description=describe("forget"))
    @app_commands.describe(who="Whose data to delete; leave it out to be forgotten yourself (others: trainers only)")
    async def forget_slash(self, interaction: discord.Interaction[TrainerBotBase], who: discord.User | None = None) -> None:
        caller = interaction_caller(interaction)
        reply = await self.bot.core.review.forget(caller, "me" if who is None else str(who.id))
        await tell(interaction, reply.content)  # what was deleted is the asker's business

    @commands.hybrid_command(name="audit", description=describe("audit"))
    @app_commands.describe(before="Show entries older than this number")
    @trainer_only()
    @commands.guild_only()
    async def audit(self, ctx: Ctx, before: int | None = None) -> None:
        await send_reply(ctx, await self.bot.core.audit.latest(ctx_caller(ctx), before), ephemeral=True)

    @commands.hybrid_command(name="contributors", description=describe("contributors"))
    @app_commands.describe(action="hide: leave the list; show: come back")
    @app_commands.choices(action=[app_commands.Choice(name="hide", value="hide"), app_commands.Choice(name="show", value="show")])
    @commands.guild_only()
    async def contributors(self, ctx: Ctx, action: str | None = None) -> None:
        reply = await self.bot.core.contributors.contributors(ctx_caller(ctx), action)
        await send_reply(ctx, reply, ephemeral=action is not None)

    # `mydata`: the file goes to its owner only — ephemeral for the slash command, by DM for the prefix one.
    @commands.command(name="mydata", description=describe("mydata"))
    @commands.cooldown(2, 60, commands.BucketType.user)
    async def mydata(self, ctx: Ctx) -> None:
        reply = await self.bot.core.review.mydata(ctx_caller(ctx))
        if not reply.files:
            await send_reply(ctx, reply)
            return
        try:
            await send_reply(ctx.author, reply)
        except discord.HTTPException:
            await send_reply(ctx, Reply.text("I could not send it by DM (are your DMs closed?); `/mydata` shows it "
                                             "to you alone here."))
            return
        if ctx.guild is not None:
            await send_reply(ctx, Reply.text("📦 Sent to you by DM."))

    @app_commands.command(name="mydata", description=describe("mydata"))
    async def mydata_slash(self, interaction: discord.Interaction[TrainerBotBase]) -> None:
        reply = await self.bot.core.review.mydata(interaction_caller(interaction))
        files = [discord.File(f.path, filename=f.name) for f in reply.files]
        try:
            await interaction.response.send_message(shown(reply.content)[:2000], files=files, ephemeral=True,
                                                    allowed_mentions=discord.AllowedMentions.none())
        finally:
            for file in files:
                file.close()

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        """✅/❌ by a trainer on a review message decides its correction (the buttons' fallback)."""
        if (
            self.bot.user is None
            or payload.user_id == self.bot.user.id
            or str(payload.emoji) not in (APPROVE_EMOJI, REJECT_EMOJI)
        ):
            return
        guild = self.bot.get_guild(payload.guild_id) if payload.guild_id else None
        user = guild.get_member(payload.user_id) if guild else None
        if guild is None or user is None or user.bot:
            return
        caller = caller_of(user, guild, payload.channel_id, owner_ids=self.bot.owner_ids_known)
        try:
            reply = await self.bot.core.review.reaction(caller, str(payload.message_id), str(payload.emoji))
        except (NotAllowed, Busy) as exc:
            await tell_by_dm(self.bot, user, f"Your {payload.emoji} in **{guild.name}** was not counted: {exc.user_message}")
            return
        except TrainerBotError as exc:
            log.info("review reaction refused: %s", exc.user_message)
            return
        channel = guild.get_channel(payload.channel_id)
        if reply is not None and isinstance(channel, discord.abc.Messageable):
            await send_reply(channel, reply)
