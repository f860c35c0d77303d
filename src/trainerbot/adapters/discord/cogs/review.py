"""Checking and reviewing: ``test``, ``handle_errors``, ``review`` (with ✅/❌ reactions),
``approve``, ``reject`` and ``forget``. Trainer-only ones are checked here and again in the core."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord.ext import commands

from trainerbot.adapters.discord.cogs.datasets import first_attachment
from trainerbot.adapters.discord.render import caller_of, ctx_caller, read_attachment, send_reply, trainer_only
from trainerbot.core.review import APPROVE_EMOJI, REJECT_EMOJI
from trainerbot.errors import TrainerBotError

log = logging.getLogger(__name__)


class ReviewCog(commands.Cog, name="Review"):
    def __init__(self, bot: Any) -> None:
        self.bot = bot

    @commands.hybrid_command(name="test", description="Run the model on test cases (JSON, or an attached .json/.jsonl)")
    @commands.cooldown(2, 60, commands.BucketType.user)
    async def test(self, ctx: commands.Context[Any], attachment: discord.Attachment | None = None, *, cases: str = "") -> None:
        att = first_attachment(ctx, attachment)
        data = await read_attachment(att, self.bot.settings.max_attachment_bytes) if att is not None else None
        async with ctx.typing():
            reply = await self.bot.core.test(ctx_caller(ctx), cases, data)
        await send_reply(ctx, reply)

    @commands.hybrid_command(name="handle_errors", description="Send a test's wrong answers to review as corrections")
    async def handle_errors(self, ctx: commands.Context[Any], test_id: str | None = None) -> None:
        await send_reply(ctx, await self.bot.core.handle_errors(ctx_caller(ctx), test_id))

    @commands.hybrid_command(name="review", description="The next correction or flagged reply waiting for review")
    @trainer_only()
    async def review(self, ctx: commands.Context[Any]) -> None:
        caller = ctx_caller(ctx)
        reply = await self.bot.core.review(caller)
        sent = await send_reply(ctx, reply)
        if sent is not None and reply.data.get("kind") == "correction":
            await self.bot.core.bind_review(caller, int(reply.data["correction_id"]), str(sent.id))
            for emoji in (APPROVE_EMOJI, REJECT_EMOJI):
                try:
                    await sent.add_reaction(emoji)
                except discord.HTTPException:
                    break  # no permission to react: the commands still work

    @commands.hybrid_command(name="approve", description="Approve a pending correction")
    @trainer_only()
    async def approve(self, ctx: commands.Context[Any], correction_id: str) -> None:
        await send_reply(ctx, await self.bot.core.approve(ctx_caller(ctx), correction_id))

    @commands.hybrid_command(name="reject", description="Reject a pending correction")
    @trainer_only()
    async def reject(self, ctx: commands.Context[Any], correction_id: str) -> None:
        await send_reply(ctx, await self.bot.core.reject(ctx_caller(ctx), correction_id))

    @commands.hybrid_command(name="forget", description="Delete someone's examples, ratings and corrections (`me`, or a user for trainers)")
    @commands.cooldown(2, 60, commands.BucketType.user)
    async def forget(self, ctx: commands.Context[Any], who: str) -> None:
        await send_reply(ctx, await self.bot.core.forget(ctx_caller(ctx), who))

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        """✅/❌ by a trainer on a review message decides its correction."""
        if self.bot.user is None or payload.user_id == self.bot.user.id or str(payload.emoji) not in (APPROVE_EMOJI, REJECT_EMOJI):
            return
        guild = self.bot.get_guild(payload.guild_id) if payload.guild_id else None
        user = guild.get_member(payload.user_id) if guild else None
        if guild is None or user is None or user.bot:
            return
        caller = caller_of(user, guild, payload.channel_id, owner_ids=self.bot.owner_ids_known)
        try:
            reply = await self.bot.core.review_reaction(caller, str(payload.message_id), str(payload.emoji))
        except TrainerBotError as exc:
            log.info("review reaction refused: %s", exc.user_message)
            return
        channel = guild.get_channel(payload.channel_id)
        if reply is not None and channel is not None:
            await send_reply(channel, reply)
