"""General commands: ``hi``, ``help``, ``instruction``, and ``sync`` (owner only)."""

from __future__ import annotations

from dataclasses import replace

import discord
from discord.ext import commands

from trainerbot.adapters.discord.base import Ctx, TrainerBotBase
from trainerbot.adapters.discord.render import ctx_caller, send_reply
from trainerbot.core.commands import describe


class GeneralCog(commands.Cog, name="General"):
    def __init__(self, bot: TrainerBotBase) -> None:
        self.bot = bot

    @commands.hybrid_command(name="hi", description=describe("hi"))
    async def hi(self, ctx: Ctx) -> None:
        await send_reply(ctx, await self.bot.core.general.hi(ctx_caller(ctx)))

    @commands.hybrid_command(name="help", description=describe("help"))
    async def help(self, ctx: Ctx) -> None:
        # As a slash command the list is for the asker only; the channel need not see it.
        reply = await self.bot.core.general.help(ctx_caller(ctx), "discord")
        if reply.embed is not None:  # what only this adapter knows: its prefix commands
            said = (f"{reply.embed.description} Every command works as a slash command (`/hi`) "
                    f"or with the prefix (`{self.bot.settings.discord.prefix}hi`).")
            reply = replace(reply, embed=replace(reply.embed, description=said))
        await send_reply(ctx, reply, ephemeral=True)

    @commands.hybrid_command(name="instruction", description=describe("instruction"))
    async def instruction(self, ctx: Ctx) -> None:
        await send_reply(ctx, await self.bot.core.general.instruction(ctx_caller(ctx)))

    @commands.command(name="sync", hidden=True)
    @commands.is_owner()
    async def sync(self, ctx: Ctx) -> None:
        """Sync the slash commands: to this server in dev mode, everywhere in prod."""
        if self.bot.settings.mode == "dev" and ctx.guild is not None:
            self.bot.tree.copy_global_to(guild=ctx.guild)
            synced = await self.bot.tree.sync(guild=ctx.guild)
        else:
            synced = await self.bot.tree.sync()
        await ctx.send(f"Synced {len(synced)} slash commands.", allowed_mentions=discord.AllowedMentions.none())
