"""Dataset commands: ``datasets``, ``dataset``, ``import``, ``archive``, ``select_dataset``,
``export``, ``getfile``. Trainer-only ones are checked here and again in the core."""

from __future__ import annotations

from typing import Any, Literal

import discord
from discord.ext import commands

from trainerbot.adapters.discord.render import ctx_caller, read_attachment, send_reply, trainer_only
from trainerbot.errors import BadInput

Label = Literal["positive", "negative"]


def first_attachment(ctx: commands.Context[Any], given: discord.Attachment | None) -> discord.Attachment | None:
    if given is not None:
        return given
    return ctx.message.attachments[0] if ctx.message is not None and ctx.message.attachments else None


class DatasetsCog(commands.Cog, name="Datasets"):
    def __init__(self, bot: Any) -> None:
        self.bot = bot

    @commands.hybrid_command(name="datasets", description="List datasets with their sizes")
    async def datasets(self, ctx: commands.Context[Any]) -> None:
        await send_reply(ctx, await self.bot.core.datasets(ctx_caller(ctx)))

    @commands.hybrid_command(name="dataset", description="Statistics of one dataset, or `item <id>`: where one example came from")
    async def dataset(self, ctx: commands.Context[Any], name: str, item: str | None = None) -> None:
        await send_reply(ctx, await self.bot.core.dataset(ctx_caller(ctx), name, item))

    @commands.hybrid_command(name="import", description="Import an attached file into a dataset")
    @trainer_only()
    @commands.cooldown(3, 60, commands.BucketType.user)
    async def import_(self, ctx: commands.Context[Any], dataset: str, label: Label | None = None,
                      attachment: discord.Attachment | None = None) -> None:
        att = first_attachment(ctx, attachment)
        if att is None:
            raise BadInput("Attach a file to import (JSONL, JSON, CSV or TXT).")
        data = await read_attachment(att, self.bot.settings.max_attachment_bytes)
        await send_reply(ctx, await self.bot.core.import_data(ctx_caller(ctx), dataset, label, data))

    @commands.hybrid_command(name="archive", description="Snapshot a dataset and start it afresh")
    @trainer_only()
    async def archive(self, ctx: commands.Context[Any], dataset: str) -> None:
        await send_reply(ctx, await self.bot.core.archive(ctx_caller(ctx), dataset))

    @commands.hybrid_command(name="select_dataset", description="Choose the data the next training uses")
    @trainer_only()
    async def select_dataset(self, ctx: commands.Context[Any], dataset: str, label: Label | None = None) -> None:
        await send_reply(ctx, await self.bot.core.select_dataset(ctx_caller(ctx), dataset, label))

    @commands.hybrid_command(name="export", description="Export a dataset as OpenAI or TRL JSONL")
    @trainer_only()
    @commands.cooldown(3, 60, commands.BucketType.user)
    async def export(self, ctx: commands.Context[Any], dataset: str, fmt: Literal["openai", "sft", "kto", "dpo", "csv"] = "openai") -> None:
        await send_reply(ctx, await self.bot.core.export(ctx_caller(ctx), dataset, fmt))

    @commands.hybrid_command(name="getfile", description="List the bot's files, or get one by name")
    @trainer_only()
    async def getfile(self, ctx: commands.Context[Any], name: str | None = None) -> None:
        await send_reply(ctx, await self.bot.core.getfile(ctx_caller(ctx), name))
