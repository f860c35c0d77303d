"""Training commands: ``train`` (with live progress), ``jobs``, ``job``, ``cancel``, ``model``."""

from __future__ import annotations

from typing import Any, Literal

import discord
from discord.ext import commands

from trainerbot.adapters.discord.cogs.datasets import first_attachment
from trainerbot.adapters.discord.render import ctx_caller, read_attachment, send_reply, trainer_only

Label = Literal["positive", "negative"]


class TrainingCog(commands.Cog, name="Training"):
    def __init__(self, bot: Any) -> None:
        self.bot = bot

    @commands.hybrid_command(name="train", description="Import data (optional) and queue a training job")
    @trainer_only()
    @commands.cooldown(2, 60, commands.BucketType.user)
    async def train(self, ctx: commands.Context[Any], dataset: str | None = None, label: Label | None = None,
                    attachment: discord.Attachment | None = None) -> None:
        caller = ctx_caller(ctx)
        att = first_attachment(ctx, attachment)
        data = await read_attachment(att, self.bot.settings.max_attachment_bytes) if att is not None else None
        reply = await self.bot.core.train(caller, dataset, label, data)
        sent = await send_reply(ctx, reply)
        if sent is not None and not reply.data.get("existing"):
            await self.bot.core.watch_job(caller, int(reply.data["job_id"]), str(sent.channel.id), str(sent.id))

    @commands.hybrid_command(name="jobs", description="Recent training jobs")
    async def jobs(self, ctx: commands.Context[Any]) -> None:
        await send_reply(ctx, await self.bot.core.jobs(ctx_caller(ctx)))

    @commands.hybrid_command(name="job", description="One job: status, progress, loss curve")
    async def job(self, ctx: commands.Context[Any], job_id: str) -> None:
        await send_reply(ctx, await self.bot.core.job(ctx_caller(ctx), job_id))

    @commands.hybrid_command(name="cancel", description="Cancel a training job")
    @trainer_only()
    async def cancel(self, ctx: commands.Context[Any], job_id: str) -> None:
        await send_reply(ctx, await self.bot.core.cancel(ctx_caller(ctx), job_id))

    @commands.hybrid_group(name="model", description="Model versions", fallback="list", invoke_without_command=True)
    async def model(self, ctx: commands.Context[Any]) -> None:
        await send_reply(ctx, await self.bot.core.model(ctx_caller(ctx), "list"))

    @model.command(name="use", description="Switch to a model version, or roll back")
    @trainer_only()
    async def model_use(self, ctx: commands.Context[Any], version: str) -> None:
        await send_reply(ctx, await self.bot.core.model(ctx_caller(ctx), "use", version))

    @model.command(name="compare", description="Two versions side by side on the held-out questions")
    @commands.cooldown(2, 60, commands.BucketType.user)
    async def model_compare(self, ctx: commands.Context[Any], first: str, second: str) -> None:
        async with ctx.typing():
            reply = await self.bot.core.model(ctx_caller(ctx), "compare", first, second)
        await send_reply(ctx, reply)
