"""Training commands: ``train`` (with live progress), ``jobs``, ``job`` and ``cancel``."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from trainerbot.adapters.discord import complete
from trainerbot.adapters.discord.base import Ctx, TrainerBotBase
from trainerbot.adapters.discord.render import (
    ROW_LABEL_HELP,
    ctx_caller,
    first_attachment,
    read_attachment,
    send_reply,
    trainer_only,
)
from trainerbot.adapters.discord.ui import answer
from trainerbot.core import Reply
from trainerbot.core.commands import describe
from trainerbot.datasets.records import Label


class TrainingCog(commands.Cog, name="Training"):
    def __init__(self, bot: TrainerBotBase) -> None:
        self.bot = bot

    @commands.hybrid_command(name="train", description=describe("train"))
    @app_commands.describe(dataset="The dataset to train on (with a file: the one it is imported into); "
                                   "left out: the selected data",
                           label=ROW_LABEL_HELP, attachment="A file to import first (JSONL, JSON, CSV or TXT)")
    @trainer_only()
    @commands.guild_only()
    @commands.cooldown(2, 60, commands.BucketType.user)
    async def train(self, ctx: Ctx, dataset: str | None = None, label: Label | None = None,
                    attachment: discord.Attachment | None = None) -> None:
        caller = ctx_caller(ctx)
        att = first_attachment(ctx, attachment)

        async def work() -> Reply:
            data = await read_attachment(att, self.bot.settings.limits.max_attachment_bytes) if att is not None else None
            return await self.bot.core.training.train(caller, dataset, label, data)
        reply = await answer(ctx, work)
        sent = await send_reply(ctx, reply)
        if sent is not None and reply.job is not None and not reply.job.existing:
            await self.bot.core.delivery.watch_job(caller, reply.job.job_id, str(sent.channel.id), str(sent.id))

    train.autocomplete("dataset")(complete.datasets)

    @commands.hybrid_command(name="jobs", description=describe("jobs"))
    async def jobs(self, ctx: Ctx) -> None:
        await send_reply(ctx, await self.bot.core.training.jobs(ctx_caller(ctx)))

    @commands.hybrid_command(name="job", description=describe("job"))
    @app_commands.describe(job_id="The job's number, as `jobs` lists it")
    async def job(self, ctx: Ctx, job_id: int) -> None:
        await send_reply(ctx, await answer(ctx, lambda: self.bot.core.training.job(ctx_caller(ctx), job_id)))

    job.autocomplete("job_id")(complete.jobs)

    @commands.hybrid_command(name="cancel", description=describe("cancel"))
    @app_commands.describe(job_id="The job to cancel")
    @trainer_only()
    @commands.guild_only()
    async def cancel(self, ctx: Ctx, job_id: int) -> None:
        await send_reply(ctx, await answer(ctx, lambda: self.bot.core.training.cancel(ctx_caller(ctx), job_id)))

    cancel.autocomplete("job_id")(complete.jobs)
