"""Teaching by everyone: ``feedback`` and ``correct`` (by ID, or as a reply to the bot's message)."""

from __future__ import annotations

from typing import Any

from discord.ext import commands

from trainerbot.adapters.discord.render import ctx_caller, send_reply


class FeedbackCog(commands.Cog, name="Feedback"):
    def __init__(self, bot: Any) -> None:
        self.bot = bot

    @commands.hybrid_command(name="feedback", description="Leave feedback for the trainers")
    @commands.cooldown(5, 60, commands.BucketType.user)
    async def feedback(self, ctx: commands.Context[Any], *, text: str) -> None:
        await send_reply(ctx, await self.bot.core.feedback(ctx_caller(ctx), text))

    @commands.hybrid_command(name="correct", description="Correct one of the bot's replies")
    async def correct(self, ctx: commands.Context[Any], message_id: str, *, text: str = "") -> None:
        ref = ctx.message.reference if ctx.interaction is None else None
        if ref is not None and ref.message_id is not None:
            # Replying to the bot's message: everything after the command is the answer.
            text = f"{message_id} {text}".strip()
            message_id = str(ref.message_id)
        await send_reply(ctx, await self.bot.core.correct(ctx_caller(ctx), message_id, text))
