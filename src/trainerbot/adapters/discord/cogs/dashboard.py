"""The web dashboard: ``dashboard`` gives a one-time login link — ephemerally to a slash
command, by DM to a prefix command (a link in a channel would let others in) — and
``dashboard logout`` signs the asker out everywhere."""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from trainerbot.adapters.discord.base import Ctx, TrainerBotBase
from trainerbot.adapters.discord.render import ctx_caller, send_reply, shown
from trainerbot.core.commands import describe


class DashboardCog(commands.Cog, name="Dashboard"):
    def __init__(self, bot: TrainerBotBase) -> None:
        self.bot = bot

    @commands.hybrid_command(name="dashboard", description=describe("dashboard"))
    @app_commands.describe(action="Leave it out for a login link; logout signs you out everywhere")
    @commands.guild_only()
    @commands.cooldown(3, 60, commands.BucketType.user)
    async def dashboard(self, ctx: Ctx, action: Literal["logout"] | None = None) -> None:
        caller = ctx_caller(ctx)
        if action == "logout":
            await send_reply(ctx, await self.bot.core.dashboard.logout(caller), ephemeral=True)
            return
        reply = await self.bot.core.dashboard.link(caller)
        if ctx.interaction is not None:
            await send_reply(ctx, reply, ephemeral=True)
            return
        try:
            await ctx.author.send(shown(reply.content), allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException:
            await self.bot.core.dashboard.logout(caller)  # the link went nowhere: void it
            await ctx.reply("I couldn't DM you the link (your DMs are closed here); use `/dashboard` instead.",
                            mention_author=False)
            return
        await ctx.reply("📬 I sent you the dashboard link by DM.", mention_author=False)
